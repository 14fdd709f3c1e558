"""Every config field is checked where it is defined, with a one-line message."""

import math
from pathlib import Path

import ml_collections
import pytest

import envs.powerflow
from configs.default import get_config
from configs.ieee118 import get_config as get_ieee118_config
from configs.runtime import ACTORS_RULES, EVALUATOR_RULES, RUNTIME_RULES
from configs.validation import validate_config
from envs import config_fields
from envs.config import RULES as ENV_RULES
from envs.config import SETTING_BEFORE_THE_FIELD, default_env_config, with_defaults
from learner.config import RULES as LEARNER_RULES


@pytest.mark.parametrize("preset", [get_config, get_ieee118_config])
def test_the_shipped_presets_are_valid(preset):
    validate_config(preset())


def _bad_value(rule, good):
    """A value the rule must reject, found among typical mistakes."""
    for candidate in (-1, -1.0, 0, 0.0, 1.5, math.nan, math.inf, "x", None, 10**9):
        if not rule.test(candidate):
            return candidate
    raise AssertionError(f"{rule.allowed} accepts every candidate")


SECTIONS = [
    ("env", ENV_RULES),
    ("learner", LEARNER_RULES),
    ("actors", ACTORS_RULES),
    ("runtime", RUNTIME_RULES),
    ("evaluator", EVALUATOR_RULES),
]
FIELDS = [(section, name) for section, rules in SECTIONS for name in rules]


@pytest.mark.parametrize(("section", "name"), FIELDS)
def test_each_field_rejects_a_bad_value_naming_field_value_and_range(section, name):
    config = get_config()
    rules = dict(SECTIONS)[section]
    *path, leaf = name.split(".")
    node = config[section]
    for part in path:
        node = node[part]
    bad = _bad_value(rules[name], node[leaf])
    # Past the ConfigDict's own type check: values also arrive from Python, not only flags.
    object.__getattribute__(node, "_fields")[leaf] = bad
    with pytest.raises(ValueError) as raised:
        validate_config(config)
    message = str(raised.value)
    assert f"{section}.{name}=" in message, message
    assert rules[name].allowed in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), (0, False), (-2, False), (2.0, False), (True, False), ("3", False)],
)
def test_at_least_wants_an_integer(value, ok):
    assert config_fields.at_least(1).test(value) is ok


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "1", None, True])
def test_number_rules_reject_non_finite_and_non_numbers(value):
    for rule in (config_fields.POSITIVE, config_fields.NON_NEGATIVE, config_fields.FINITE):
        assert not rule.test(value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"env.freq_collapse_hz": 0.2, "env.freq_band_hz": 0.2},
            r"env\.freq_collapse_hz=.* must exceed",
        ),
        ({"env.reward_weights": (0.5, 0.5)}, r"env\.reward_weights"),
        ({"env.storage_buses": (0,)}, r"env\.storage_buses"),
        (
            {"env.island_rule": "largest_load", "env.physics": "ac"},
            r"env\.island_rule='largest_load' needs env\.physics",
        ),
        ({"env.island_rule": "biggest"}, r"env\.island_rule"),
        (
            {"env.reward": "layered", "env.episode_end": "stored_energy"},
            r"env\.episode_end='stored_energy' .* needs env\.reward",
        ),
        ({"env.episode_end": "credit"}, r"env\.episode_end"),
        ({"learner.hidden_size": 30, "learner.num_heads": 4}, "divisible"),
    ],
)
def test_cross_field_and_tuple_checks(fields, message):
    config = get_config()
    for name, value in fields.items():
        section, field = name.split(".")
        config[section][field] = value
    with pytest.raises(ValueError, match=message):
        validate_config(config)


def test_a_stored_config_merges_onto_the_defaults_section_by_section():
    """``merged_onto``: what was stored wins, fields it lacks (added since) keep their
    defaults, nested sections merge field by field, and a field the defaults lack is kept."""
    defaults = ml_collections.ConfigDict({"a": 1, "new": 2.0, "section": {"x": 1, "added": "d"}})
    stored = {"a": 5, "section": {"x": 7}, "old": True}
    merged = config_fields.merged_onto(defaults, stored)
    assert merged.to_dict() == {
        "a": 5,
        "new": 2.0,
        "section": {"x": 7, "added": "d"},
        "old": True,
    }


def test_a_stored_env_config_without_a_moved_default_keeps_the_setting_it_ran_with():
    """``with_defaults``: a field whose default changed after it was added (the island rule,
    the OPF's fallback) takes, where a stored config lacks it, the setting from before the
    field, and keeps what a config stored since says."""
    stored = default_env_config()
    for name in SETTING_BEFORE_THE_FIELD:
        del stored[name]
    before = with_defaults(stored)
    assert before.island_rule == "slack" and before.opf_fallback == "merit_order"
    assert with_defaults(default_env_config()).island_rule == "largest_load"
    stored = default_env_config()
    stored.island_rule = "slack"
    assert with_defaults(stored).island_rule == "slack"


@pytest.mark.parametrize(
    ("env_fields", "refused"),
    [
        ({"layout": "hierarchical"}, True),
        ({"case": "ieee118"}, True),  # its default layout is the hierarchical one
        ({"case": "ieee30"}, False),  # per node, as ieee14
        # A case file of one's own: its layout is known once the grid is built, and the policy
        # checks the names then (a big grid's is hierarchical).
        ({"case": str(Path(envs.powerflow.__file__).parent / "cases" / "case118.m")}, False),
    ],
)
def test_per_type_fields_name_only_the_layouts_agent_types(env_fields, refused):
    config = get_config()
    config.env.update(env_fields)
    assert config.learner.type_init_action.startswith("prosumer=")  # the preset's start
    if refused:
        message = (
            r"learner\.type_init_action names agent type 'prosumer', which this layout lacks: "
            r"it has strategic, operational, safety \(--config\.learner\.type_init_action= "
        )
        with pytest.raises(ValueError, match=message):
            validate_config(config)
        config.learner.type_init_action = ""
        config.learner.type_gamma = "regional=0.9"
        with pytest.raises(ValueError, match=r"type_gamma names agent type 'regional'"):
            validate_config(config)
        config.learner.type_gamma = "safety=0.9"
    validate_config(config)


def test_every_per_type_field_that_names_a_missing_type_is_named_in_the_one_line():
    """A user who moves the preset to another layout meets the refusal once, with every field
    to clear, not one field after another."""
    config = get_config()
    config.env.layout = "hierarchical"
    config.learner.type_init_action = "prosumer=0.1"
    config.learner.type_gamma = "prosumer=0.997,battery=0.99"
    message = (
        r"^learner\.type_gamma, learner\.type_init_action name agent types 'prosumer', "
        r"'battery', which this layout lacks: it has strategic, operational, safety "
        r"\(--config\.learner\.type_gamma= --config\.learner\.type_init_action= clear them\)$"
    )
    with pytest.raises(ValueError, match=message):
        validate_config(config)
    config.learner.type_gamma = config.learner.type_init_action = ""
    validate_config(config)
