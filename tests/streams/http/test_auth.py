"""Tokens and rights (pure): who a request is, and what each role may do."""

import pytest
from pydantic import ValidationError

from schemas import Config, Grant, token_digest
from streams.http.auth import OPEN, PUBLIC, RIGHTS, Auth, Denied
from streams.settings import ConfigError, Settings

ADMIN, GATEWAY, POLICE = "admin-token-000000001", "gateway-token-0000001", "police-token-00000001"
AUTH = Auth([Grant(role="admin", token=ADMIN), Grant(role="gateway", token=GATEWAY),
             Grant(role="department", department="police", token_sha256=token_digest(POLICE))])


def test_without_tokens_every_caller_is_an_unnamed_admin():
    assert Auth([]).open and Auth([]).check(None, "change_playbooks") is OPEN
    assert Auth([]).describe() == "open mode: no tokens configured"
    assert AUTH.describe() == "tokens: 1 admin, 1 department, 1 gateway"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic YWRtaW4=",
                                    f"Token {ADMIN}", "Bearer not-a-known-token-at-all"])
def test_no_or_unknown_token_is_401(header):
    with pytest.raises(Denied) as denied:
        AUTH.check(header, "read_tasks")
    assert denied.value.status == 401


def test_a_token_given_only_by_its_sha256_is_recognised():
    caller = AUTH.check(f"Bearer {POLICE}", "read_tasks")
    assert (caller.role, caller.department) == ("department", "police")
    assert caller.may_see("police") and not caller.may_see("power_supply")


@pytest.mark.parametrize("right", sorted(RIGHTS))
def test_each_role_holds_exactly_the_rights_of_the_table(right):
    for token, role in ((ADMIN, "admin"), (GATEWAY, "gateway"), (POLICE, "department")):
        if role in RIGHTS[right]:
            assert AUTH.check(f"Bearer {token}", right).role == role
        else:
            with pytest.raises(Denied) as denied:
                AUTH.check(f"bearer {token}", right)
            assert denied.value.status == 403 and right.replace("_", " ") in denied.value.message


def test_public_needs_no_token_but_still_knows_who_called():
    assert AUTH.check(None, PUBLIC).role == "anonymous"
    assert AUTH.check(f"Bearer {GATEWAY}", PUBLIC).role == "gateway"


def test_the_gateway_only_posts_alarms_and_the_admin_does_everything():
    assert [r for r in RIGHTS if "gateway" in RIGHTS[r]] == ["post_alarms"]
    assert all("admin" in roles for roles in RIGHTS.values())


@pytest.mark.parametrize("grant, field", [
    ({"role": "department", "token": "x" * 20}, "department"),
    ({"role": "gateway", "department": "police", "token": "x" * 20}, "department"),
    ({"role": "admin"}, "token"),
    ({"role": "admin", "token": "x" * 20, "token_sha256": "0" * 64}, "token"),
    ({"role": "admin", "token": "short"}, "token"),
    ({"role": "admin", "token_sha256": "ABC"}, "token_sha256"),
    ({"role": "root", "token": "x" * 20}, "role"),
])
def test_a_bad_grant_is_refused_naming_the_field(grant, field):
    with pytest.raises(ValidationError) as refused:
        Config.model_validate({"tokens": [grant]})
    assert field in {str(p) for e in refused.value.errors() for p in e["loc"]}


def test_the_same_token_twice_is_refused():
    with pytest.raises(ValidationError, match="twice"):
        Config.model_validate({"tokens": [{"role": "admin", "token": ADMIN},
                                          {"role": "gateway", "token": ADMIN}]})


def test_config_file_and_environment_add_up_and_unknown_departments_are_named(tmp_path,
                                                                               monkeypatch):
    file = tmp_path / "whistle.yaml"
    file.write_text(f"tokens:\n  - {{role: admin, token: {ADMIN}}}\n"
                    "webhooks:\n  police: {url: 'http://127.0.0.1:9/hook', "
                    "secret: 'a-secret-of-16-chars'}\n", encoding="utf-8")
    monkeypatch.setenv("WHISTLE_TOKENS", f'[{{"role": "gateway", "token": "{GATEWAY}"}}]')
    access = Settings(config=file).access()
    assert [g.role for g in access.tokens] == ["admin", "gateway"]
    assert str(access.webhooks["police"].url) == "http://127.0.0.1:9/hook"
    file.write_text("tokens:\n  - {role: department, department: polise, token: "
                    f"{POLICE}}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tokens\.0\.department: unknown department 'polise'"):
        Settings(config=file).access()
    file.write_text("webhooks:\n  nobody: {url: 'http://x', secret: 'a-secret-of-16-chars'}\n")
    with pytest.raises(ConfigError, match="webhooks.nobody"):
        Settings(config=file).access()
    file.write_text("tokens: [{role: admin}]\n")
    with pytest.raises(ConfigError, match=r"whistle\.yaml: tokens\.0\.token"):
        Settings(config=file).access()
