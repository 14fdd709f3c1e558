"""MATPOWER reader: syntax coverage, shipped data provenance, one clear error per defect."""

import re

import numpy as np
import pytest

from envs.powerflow import matpower
from envs.powerflow.case import SHIPPED_CASES, Case, CaseError, load_case
from envs.powerflow.matpower import MatpowerFormatError, parse_matpower

# A small network exercising everything the reader and the models must honour:
# non-consecutive bus numbers in no particular order, a tap-changing transformer,
# a phase shifter, an out-of-service branch and generator, two generators on one
# bus, bus shunts (Gs and Bs), continuation lines, commas, cell arrays, a
# piecewise-linear cost and extra fields that must be ignored.
ODD_CASE = """function mpc = odd
%ODD  hand-written test network
mpc.version = '2';
mpc.baseMVA = 100;  % MVA
%% bus data
%	bus_i	type	Pd	Qd	Gs	Bs	area	Vm	Va	baseKV	zone	Vmax	Vmin
mpc.bus = [
	10	3	0	0	0	0	1	1.02	5	230	1	1.1	0.9;
	20	2	30	10	0	0	1	1.0	0	230	1	1.1	0.9;
	7	1	90	30	5	19	1	1.0	0	230	1	1.1	0.9
	42	1	60	20	0	0	1	1.0	0	230	1	1.1	0.9;
	5, 2, 40, 15, 0, -5, 1, 1.0, 0, 230, 1, 1.1, 0.9;
	99	1	25	5	0	0	1	1.0	0	230	1	1.1	0.9;
];
mpc.gen = [
	10	0	0	300	-300	1.04	100	1	300	0	0	0	0	0	0	0	5	0	0	0	0;
	20	50	0	100	-100	1.02	100	1	150	10	0	0	0	0	0	0	2	0	0	0	0;
	20	30	0	50	-50	1.02	100	1	100	0	0	0	0	0	0	0	0	0	0	0	0;
	5	60	0	80	-80	1.01	100	1	120	0	0	0	0	0	0	0	0	0	0	0	0;
	42	40	0	50	-50	1.0	100	0	100	0	0	0	0	0	0	0	0	0	0	0	0;
];
mpc.branch = [
	10	20	0.01	0.06	0.03	100	0	0	0	0	1	-360	360;
	10	7	0.05	0.2	0.02	80	0	0	0	0	1	-360	360;
	20	7	0.04	0.18	0.02	80	0	0	0	0	1	-360	360;
	20	42	0.05	0.17	0.02	80	0	0	0	0	1	-360	360;
	42	5	0	0.25	0	60	0	0	0.978	0	1	-360	360;
	7	5	0.002	0.05	0	60	0	0	1.05	-3	1	-360	360;
	5	99	0.03	0.1	0.01	50	0	0	0	0	1	-360	360;
	42	99	0.04	0.12	0.01	50	0	0	0	0	1	-360	360;
	20	5	0.03	0.1	0.01	50	0	0	0	0	0	-360	360;
];
mpc.gencost = [
	2	0	0	3	0.01	20	100;
	2	0	0	3	0.02	25	...
		50;
	2	0	0	2	30	0;
	1	0	0	3	0	0	60	1500	120	3800;
	2	0	0	3	0.03	10	0;
];
mpc.bus_name = {
	'Alpha';
	'Beta';
};
mpc.areas = [1 10];
"""


def test_odd_case_parses_every_construct():
    data = parse_matpower(ODD_CASE, source="odd.m")
    assert data.base_mva == 100.0
    assert data.bus.shape == (6, 13)
    assert data.gen.shape == (5, 21)
    assert data.branch.shape == (9, 13)
    assert data.gencost.shape == (5, 10)  # widest row (pwl with 3 points) sets the width
    np.testing.assert_array_equal(data.bus[:, 0], [10, 20, 7, 42, 5, 99])
    assert data.bus[4, 5] == -5  # comma-separated row
    assert data.gencost[1, 6] == 50  # continued with "..."
    np.testing.assert_array_equal(data.gencost[3, 4:10], [0, 0, 60, 1500, 120, 3800])


def test_rows_on_the_bracket_lines_and_semicolon_separated_rows():
    text = """mpc.baseMVA = 100;
mpc.bus = [1 3 0 0 0 0 1 1 0 100 1 1.1 0.9; 2 1 10 0 0 0 1 1 0 100 1 1.1 0.9];
mpc.gen = [1 10 0 10 -10 1 100 1 50 0];
mpc.branch = [1 2 0.01 0.1 0 0 0 0 0 0 1];
"""
    data = parse_matpower(text)
    assert data.bus.shape == (2, 13)
    assert data.gen.shape == (1, 21)  # version-1 width padded with zeros
    np.testing.assert_array_equal(data.branch[0, 11:], [-360, 360])  # padded angle limits
    assert data.gencost is None


@pytest.mark.parametrize("name", sorted(SHIPPED_CASES))
def test_shipped_case_matches_matpower_data_from_pypower(name):
    import pypower.api as pp

    reference = getattr(pp, SHIPPED_CASES[name])()
    case = load_case(name)
    assert case.base_mva == reference["baseMVA"]
    np.testing.assert_array_equal(case.bus, reference["bus"])
    np.testing.assert_array_equal(case.gen, reference["gen"])
    np.testing.assert_array_equal(case.gencost, reference["gencost"])
    ratings_column = 5
    other = [c for c in range(13) if c not in (ratings_column, 6, 7)]
    np.testing.assert_array_equal(case.branch[:, other], reference["branch"][:, other])
    assert case.bus_xy.shape == (case.bus.shape[0], 2)


def _replace_line(old: str, new: str) -> str:
    assert old in ODD_CASE
    return ODD_CASE.replace(old, new, 1)


def _line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


BAD_INPUTS = {
    # defect: ((old text, new text), words the message must contain, text on the named line)
    "wrong column count": (
        ("\t42\t1\t60\t20\t0\t0\t1\t1.0\t0\t230\t1\t1.1\t0.9;", "\t42\t1\t60\t20\t0\t0;"),
        "row has 6 columns, expected 13",
        "\t42\t1\t60\t20\t0\t0;",
    ),
    "non-numeric token": (
        ("\t99\t1\t25\t5", "\t99\t1\t25x\t5"),
        "non-numeric token '25x'",
        "25x",
    ),
    "gencost rows": (
        ("\t2\t0\t0\t3\t0.03\t10\t0;\n", ""),
        "gencost has 4 rows",
        "mpc.gencost = [",
    ),
    "unknown bus": (("\t42\t99\t0.04", "\t42\t98\t0.04"), "refers to bus 98", "\t42\t98\t0.04"),
    "short gencost": (
        ("\t2\t0\t0\t2\t30\t0;", "\t2\t0\t0\t3\t30\t0;"),
        "needs 7",
        "\t2\t0\t0\t3\t30\t0;",
    ),
}


@pytest.mark.parametrize("defect", sorted(BAD_INPUTS))
def test_malformed_input_names_file_line_and_problem(defect):
    (old, new), expected, on_line = BAD_INPUTS[defect]
    text = _replace_line(old, new)
    with pytest.raises(MatpowerFormatError) as raised:
        parse_matpower(text, source="broken.m")
    message = str(raised.value)
    assert message.startswith(f"broken.m:{_line_of(text, on_line)}: ")
    assert expected in message
    assert "\n" not in message


def test_wrong_column_count_points_at_the_offending_line():
    text = _replace_line("\t5, 2, 40, 15, 0, -5, 1, 1.0, 0, 230, 1, 1.1, 0.9;", "\t5, 2, 40;")
    with pytest.raises(MatpowerFormatError, match=rf"odd.m:{_line_of(text, '5, 2, 40;')}: "):
        parse_matpower(text, source="odd.m")


def test_missing_bus_matrix():
    text = "mpc.baseMVA = 100;\nmpc.gen = [1 0 0 0 0 1 100 1 1 0];\nmpc.branch = [1 1 0 1 0 0 0 0 0 0 1];"
    with pytest.raises(MatpowerFormatError, match=r"missing mpc\.bus"):
        parse_matpower(text, source="x.m")


def test_unterminated_matrix_names_its_opening_line():
    text = ODD_CASE.replace("];\nmpc.gen", "\nmpc.gen", 1)
    with pytest.raises(MatpowerFormatError, match=r"x\.m:\d+: .*mpc\.bus"):
        parse_matpower(text, source="x.m")
    text = ODD_CASE.split("mpc.gencost")[0] + "mpc.gencost = [\n 2 0 0 2 1 0;\n"
    with pytest.raises(MatpowerFormatError, match=r"unterminated matrix mpc\.gencost"):
        parse_matpower(text, source="x.m")


def test_format_error_is_a_value_error():
    assert issubclass(MatpowerFormatError, ValueError)


def test_load_case_errors_are_one_line_case_errors(tmp_path):
    bad = tmp_path / "bad.m"
    bad.write_text(ODD_CASE.replace("mpc.baseMVA = 100;", "mpc.baseMVA = 0;"))
    for source, message in (
        ("ieee9999", "unknown case 'ieee9999': use a shipped name (ieee118, ieee14, ieee30)"),
        (str(tmp_path / "missing.m"), "does not exist: use a shipped name"),
        (str(bad), "bad.m: mpc.baseMVA must be positive"),
    ):
        with pytest.raises(CaseError, match=re.escape(message)) as caught:
            load_case(source)
        assert "\n" not in str(caught.value)
    path = tmp_path / "odd.m"
    path.write_text(ODD_CASE)
    case = load_case(path)
    assert case.name == "odd" and case.bus.shape == (6, 13)
    assert case.bus_xy is None


def test_case_round_trips_through_ppc():
    case = Case.from_matpower(parse_matpower(ODD_CASE), name="odd")
    again = Case.from_ppc(case.to_ppc(), name="odd")
    for field in ("bus", "gen", "branch", "gencost"):
        np.testing.assert_array_equal(getattr(again, field), getattr(case, field))
    assert matpower.BUS_COLUMNS == again.bus.shape[1]


def test_genfuel_is_read_and_checked():
    fuels = "mpc.genfuel = {\n\t'NG';\n\t'wind'; 'coal';\n\t'solar';\n\t'hydro';\n};\n"
    data = parse_matpower(ODD_CASE + fuels)
    assert data.gen_fuel == ("ng", "wind", "coal", "solar", "hydro")
    with pytest.raises(MatpowerFormatError, match=r"mpc\.genfuel has 2 entries but mpc\.gen has 5"):
        parse_matpower(ODD_CASE + "mpc.genfuel = {'wind'; 'coal'};\n")


def test_written_case_reads_back_identically(tmp_path):
    fuels = "mpc.genfuel = {'ng'; 'wind'; 'coal'; 'solar'; 'hydro'};\n"
    data = parse_matpower(ODD_CASE + fuels)
    again = matpower.read_matpower(matpower.write_matpower(data, tmp_path / "odd copy.m"))
    assert again.base_mva == data.base_mva and again.gen_fuel == data.gen_fuel
    for field in ("bus", "gen", "branch", "gencost"):
        np.testing.assert_array_equal(getattr(again, field), getattr(data, field))
