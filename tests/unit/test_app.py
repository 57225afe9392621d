"""create_app builds one raw-bytes agent per source topic, with explicit acks, from settings alone."""

from __future__ import annotations

from streamapp.app import create_app
from streamapp.config.settings import Settings


def test_one_agent_per_source_topic_with_fan_out_routes() -> None:
    settings = Settings.from_mapping(
        {
            "name": "unit-app",
            "connect.coap.uri": "coap://127.0.0.1:5683/base",
            "connect.coap.kcql": "INSERT INTO a SELECT * FROM t1; INSERT INTO b SELECT x FROM t1; "
            "INSERT INTO c SELECT * FROM t2",
            "web.port": "16999",
        }
    )
    app = create_app(settings)
    names = sorted(app.agents)
    assert names == ["coap-sink.t1", "coap-sink.t2"]
    topics = {name: agent.channel.get_topic_name() for name, agent in app.agents.items()}
    assert topics == {"coap-sink.t1": "t1", "coap-sink.t2": "t2"}
    for agent in app.agents.values():
        assert agent.channel.value_serializer == "raw"
        assert agent.channel.key_serializer == "raw"
    assert app.conf.web_port == 16999
    assert app.conf.broker[0].host == "localhost"


def test_offsets_are_committed_at_the_configured_cadence() -> None:
    base = {"connect.coap.uri": "coap://127.0.0.1:5683", "connect.coap.kcql": "INSERT INTO a SELECT * FROM t"}
    app = create_app(Settings.from_mapping(base))
    assert app.conf.broker_commit_interval == 1.0
    assert app.conf.web_bind == "127.0.0.1", "the web server is reachable from elsewhere only when told"
    tuned = Settings.from_mapping({**base, "offset.flush.interval.ms": "250"})
    assert create_app(tuned).conf.broker_commit_interval == 0.25
