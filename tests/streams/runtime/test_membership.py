"""A worker's name in its consumer group (streams.runtime.membership.instance_id): its canonical
URL's host and port, in what Kafka allows a group.instance.id; the restart itself is
tests/integration/test_restart.py."""

from __future__ import annotations

import re

from streams.app import _new_app
from streams.runtime.membership import instance_id
from streams.settings import Settings

LEGAL = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def test_the_name_is_the_urls_host_and_port_in_legal_characters():
    assert instance_id("http://whistle-0.whistle-workers.whistle.svc:6066") \
        == "whistle-0.whistle-workers.whistle.svc_6066"
    assert instance_id("http://127.0.0.1:6066/") == "127.0.0.1_6066"
    assert instance_id("http://[::1]:6066") == "___1__6066"
    assert instance_id("http://127.0.0.1:6066") != instance_id("http://127.0.0.1:6067")


def test_a_wildcard_address_names_no_one_worker_so_it_stays_dynamic():
    assert instance_id("http://0.0.0.0:6066") is None
    assert instance_id("http://[::]:6066") is None
    assert instance_id("http://whistle-0:6066") == "whistle-0_6066"


def test_a_long_url_is_shortened_and_stays_apart_from_its_neighbours():
    a, b = (instance_id(f"http://{'w' * 300}{n}.example:6066") for n in (1, 2))
    assert LEGAL.fullmatch(a) and LEGAL.fullmatch(b)
    assert a != b


def test_the_worker_takes_it_from_its_settings_and_can_go_without():
    app = _new_app(Settings(host="127.0.0.1", port=6070))
    assert app.conf.consumer_group_instance_id == "127.0.0.1_6070"
    app = _new_app(Settings(canonical_url="http://whistle-1:6066", port=6070))
    assert app.conf.consumer_group_instance_id == "whistle-1_6066"
    app = _new_app(Settings(static_membership=False))
    assert app.conf.consumer_group_instance_id is None
    app = _new_app(Settings(host="0.0.0.0", port=6070))  # the image's, without a canonical URL
    assert app.conf.consumer_group_instance_id is None
