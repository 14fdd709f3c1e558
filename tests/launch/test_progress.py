from launch.progress import summary_text


def test_summary_states_the_queue_memory_bound_once_an_item_was_measured():
    queue = {"capacity": 2, "item_bytes": 3 * 2**20, "bound_bytes": 6 * 2**20}
    text = summary_text({"queue": queue}, "/runs/x", "local_mp", 0)
    assert "queue memory     2 items x 3.0 MiB = 6.0 MiB at most" in text
    unmeasured = {"capacity": 2, "item_bytes": 0, "bound_bytes": 0}
    assert "queue memory" not in summary_text({"queue": unmeasured}, "/runs/x", "local_mp", 0)


def test_the_progress_line_shows_the_cost_against_the_teacher_when_it_is_measured():
    from launch.progress import progress_line

    progress = {"env_steps": 10, "total_env_steps": 20, "episode/cost": 90.0}
    assert "vs teacher" not in progress_line(progress)
    progress["episode/teacher_cost"] = 100.0
    assert "vs teacher 0.9000" in progress_line(progress)
    assert "validated" not in progress_line(progress)
    progress["validation/cost_vs_teacher"] = 0.98765
    assert "validated 0.9877 of the teacher" in progress_line(progress)


def test_the_summary_shows_the_last_validation_when_the_run_validates():
    validation = {"update": 120, "validation/cost_vs_teacher": 0.9871}
    text = summary_text({"last_validation": validation}, "/runs/x", "local_mp", 0)
    assert "validation at update 120:" in text and "validation/cost_vs_teacher" in text
    assert "0.9871" in text
    assert "validation at" not in summary_text({}, "/runs/x", "local_mp", 0)
