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


def test_a_set_accepts_any_of_its_answers_and_rel_zero_is_exact():
    ties = {"thinking free", "thinking skipped"}
    assert check("e", "thinking skipped", ties) and check("e", "thinking free", ties)
    assert not check("e", "T=1.5", ties) and not check("e", ["thinking free"], ties)
    blocks = (2 * 2**30 // 768) // 128 * 128                    # notebook 03 exercise 1: whole blocks of 128
    assert check("e", blocks, blocks, rel=0)
    assert not check("e", 2 * 2**30 // 768, blocks, rel=0)     # not rounded to whole blocks
    assert not check("e", 2 * 2**30 / 768, blocks, rel=0)      # not even whole tokens
