import pytest

from logitsmatch.serving.limits import Limits


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_frame_bytes", 0),
        ("max_id_chars", -1),
        ("max_stop_strings", True),
        ("max_text_chars", 1.5),
    ],
)
def test_bad_limits_name_the_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf"Limits\.{field} must be a positive int, got {value!r}"):
        Limits(**{field: value})


def test_frame_must_hold_a_reply_that_echoes_the_prompt():
    with pytest.raises(ValueError, match=r"max_frame_bytes \(1000\) must be at least twice"):
        Limits(max_frame_bytes=1000, max_prompt_bytes=600)
