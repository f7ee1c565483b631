"""A silence request is refused naming the field: no matcher, an end before its start, an
unknown site type or matcher."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.silence import SilenceRequest

OK = {"matchers": {"site_id": "lab-3"}, "reason": "烟感年检",
      "starts_at": "2026-12-06T08:00:00+08:00", "ends_at": "2026-12-06T12:00:00+08:00"}


def test_a_good_request():
    assert SilenceRequest.model_validate(OK).matchers.site_id == "lab-3"


@pytest.mark.parametrize(("over", "loc"), [
    ({"matchers": {}}, ("matchers",)),
    ({"matchers": {"site_id": None}}, ("matchers",)),
    ({"matchers": {"room": "3"}}, ("matchers", "room")),
    ({"matchers": {"site_type": "castle"}}, ("matchers", "site_type")),
    ({"ends_at": "2026-12-06T08:00:00+08:00"}, ("ends_at",)),
    ({"ends_at": "2026-12-06T07:00:00+08:00"}, ("ends_at",)),
    ({"ends_at": "tomorrow"}, ("ends_at",)),
    ({"reason": ""}, ("reason",)),
])
def test_a_bad_request_names_its_field(over, loc):
    with pytest.raises(ValidationError) as caught:
        SilenceRequest.model_validate({**OK, **over})
    assert caught.value.errors()[0]["loc"] == loc


def test_the_reason_is_required():
    with pytest.raises(ValidationError) as caught:
        SilenceRequest.model_validate({k: v for k, v in OK.items() if k != "reason"})
    assert caught.value.errors()[0]["loc"] == ("reason",)
