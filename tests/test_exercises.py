from course_utils.exercises import check


def test_check_accepts_close_numbers_and_rejects_others(capsys):
    assert check("e", 4.0, 4.01, rel=0.01)
    assert not check("e", 5.0, 4.0, hint="think")
    assert "Hint: think" in capsys.readouterr().out
    assert not check("e", "abc", 4.0)
    assert check("e", "R1", "R1") and not check("e", "V3", "R1")


def test_unanswered_is_reported_not_raised(capsys):
    assert check("e", None, 1.0) is False
    assert "not answered yet" in capsys.readouterr().out
