"""The HAProxy driver's parsers, on replies captured from a real HAProxy 2.6.12 (Debian 12).

REPLY is one batch's reply to `show stat;show map route.map`, captured after `set server
web/s_drain state drain`, `set server web/s_maint state maint` and `set server web/s_nocheck
weight 3`, a few requests through the frontend (one answered 501), and with s_down's port
come back to life (so it reads "DOWN 1/3": one good check of the three it needs).
"""

from __future__ import annotations

import csv
import random

import pytest

from console.builtin import haproxy
from console.errors import GatewayRefused

REPLY = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eres"
    "p,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid"
    ",iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_c"
    "ode,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanaf"
    "ail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,co"
    "mp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_cod"
    "e,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_"
    "rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_"
    "tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,s"
    "rc_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur"
    ",used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,a"
    "gg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,"
    "h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn"
    "_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_r"
    "esp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_"
    "total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_"
    "streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n"
    "route_web,FRONTEND,,,0,1,9985,7,783,1217,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,7,0,7"
    ",,,,0,6,0,0,1,0,,7,7,7,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,7,7,7,0,0,0,0,,,0,0,,"
    ",,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,7,7,903,1200,0,0,\n"
    "web,s_up,0,0,0,1,,4,474,875,,0,,0,0,0,0,UP,1,1,0,0,0,2,0,,1,3,1,,4,,2,4,,4,L7OK,"
    "200,0,0,3,0,0,1,0,,,,4,0,0,,,,,0,,,0,0,0,0,,,,Layer7 check passed,,3,2,4,,,,127."
    "0.0.1:34243,,http,,,,,,,,0,4,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,"
    ",,,,,,,,\n"
    "web,s_drain,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN,1,1,0,0,0,0,0,,1,3,2,,0,,2,0,,0,L7O"
    "K,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check passed,,3,2,4,,,,1"
    "27.0.0.1:34243,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,"
    ",,,,,,,,,,,\n"
    "web,s_maint,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,0,1,0,0,,1,3,3,,0,,2,0,,0,,,,"
    "0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:34243,,http,,,,,,,,0,"
    "0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "web,s_track,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT (via web/s_maint),1,1,0,,,0,,,1,3,4"
    ",,0,web/s_maint,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0"
    ".0.1:34243,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,"
    ",,,,,,,\n"
    "web,s_nocheck,0,0,0,1,,3,309,342,,0,,0,0,0,0,no check,3,1,0,,,2,,,1,3,5,,3,,2,3,"
    ",3,,,,0,3,0,0,0,0,,,,3,0,0,,,,,0,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:34243,,http,,,,,"
    ",,,0,3,0,,,0,,0,0,0,0,0,0,0,0,1,3,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "web,s_down,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN 1/3,1,1,0,1,1,2,2,,1,3,6,,0,,2,0,,0,L"
    "7OK,200,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check passed,,3,2,1,,,"
    ",127.0.0.1:46023,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,"
    ",,,,,,,,,,,,,\n"
    "web,BACKEND,0,0,0,1,1,7,783,1217,0,0,,0,0,0,0,UP,4,2,0,,0,2,0,,1,3,0,,7,,1,7,,7,"
    ",,,0,6,0,0,1,0,,,,7,0,0,0,0,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,http,leastconn,,,,,,,0,"
    "7,0,0,0,,,0,0,0,0,0,,,,,4,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,30,30,3217"
    ",1094,0,0,\n"
    "soft,s_nolb,0,0,0,0,,0,0,0,,0,,0,0,0,0,NOLB,1,1,0,0,0,2,0,,1,4,1,,0,,2,0,,0,L7OK"
    "C,404,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,Layer7 check conditionally pass"
    "ed,,3,2,4,,,,127.0.0.1:34243,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,"
    "0,0,,,,,,,,,,,,,,,,,,,,,,\n"
    "soft,BACKEND,0,0,0,0,1,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,1,2,2,,1,4,0,,0,,1,0,,0,,,"
    ",0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,"
    "0,0,0,0,,,0,0,0,0,0,,,,,0,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,5,5,590,12"
    "5,0,0,\n"
    "\n"
    "0x55b872fbfcf0 web web\n"
    "\n"
)


def _answers(reply: str) -> list[str]:
    answers, rest = haproxy.split_answers(reply)
    assert rest == ""
    return answers


def test_a_batch_reply_splits_into_one_answer_per_command() -> None:
    stat, route = _answers(REPLY)
    assert stat.startswith("# pxname,svname,")
    assert route == "0x55b872fbfcf0 web web"


@pytest.mark.parametrize(
    ("reply", "answers", "rest"),
    [
        ("\n\n\n", ["", "", ""], ""),  # three `set server` that succeeded, as HAProxy says it
        ("No such server.\n\n\n", ["No such server.", ""], ""),
        ("", [], ""),
        ("# pxname,svname\nweb,s1", [], "# pxname,svname\nweb,s1"),  # cut off mid-answer
        # HAProxy 2.6 closes this one error without its empty line
        (
            "Empty weight string empty or preceded by garbage\n",
            [],
            "Empty weight string empty or preceded by garbage",
        ),
    ],
)
def test_split_answers(reply: str, answers: list[str], rest: str) -> None:
    assert haproxy.split_answers(reply) == (answers, rest)


def test_show_stat_servers_keep_the_raw_status_beside_the_canonical_state() -> None:
    servers, _ = haproxy.parse_stat(_answers(REPLY)[0])
    seen = {name: (s.state, s.status) for (_, name), s in servers.items()}
    assert seen == {
        "s_up": ("UP", "UP"),
        "s_drain": ("DRAIN", "DRAIN"),
        "s_maint": ("MAINT", "MAINT"),
        "s_track": ("MAINT", "MAINT (via web/s_maint)"),
        "s_nocheck": ("UP", "no check"),
        "s_down": ("DOWN", "DOWN 1/3"),
        "s_nolb": ("DRAIN", "NOLB"),
    }


def test_show_stat_counters_and_checks() -> None:
    servers, backends = haproxy.parse_stat(_answers(REPLY)[0])
    up = servers[("web", "s_up")]
    assert (up.backend, up.server) == ("web", "s_up")
    assert (up.weight, up.scur, up.qcur, up.stot, up.hrsp_5xx) == (1, 0, 0, 4, 1)
    assert up.check_status == "L7OK"
    assert servers[("web", "s_nocheck")].weight == 3
    assert servers[("web", "s_nocheck")].stot == 3
    assert servers[("web", "s_nocheck")].check_status is None
    assert servers[("soft", "s_nolb")].check_status == "L7OKC"
    assert set(backends) == {"web", "soft"}  # the FRONTEND row is no backend
    web = backends["web"]
    assert (web.status, web.scur, web.qcur, web.stot, web.hrsp_5xx) == ("UP", 0, 0, 7, 1)
    assert backends["soft"].status == "DOWN"


def _shuffled_columns(answer: str, seed: int) -> str:
    header, *rows = csv.reader(answer[2:].split("\n"))
    order = list(range(len(header)))
    random.Random(seed).shuffle(order)
    lines = [",".join(row[i] for i in order) for row in [header, *rows]]
    return "# " + "\n".join(lines)


def test_show_stat_is_read_by_column_name_not_position() -> None:
    answer = _answers(REPLY)[0]
    assert haproxy.parse_stat(_shuffled_columns(answer, seed=5)) == haproxy.parse_stat(answer)


def test_a_check_in_progress_reports_its_last_result() -> None:
    answer = _answers(REPLY)[0].replace(",L7OKC,", ",* L7OKC,")
    servers, _ = haproxy.parse_stat(answer)
    assert servers[("soft", "s_nolb")].check_status == "L7OKC"


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("UP", "UP"),
        ("UP 1/3", "UP"),  # going down
        ("no check", "UP"),
        ("DOWN", "DOWN"),
        ("DOWN 1/2", "DOWN"),  # going up
        ("DOWN (agent)", "DOWN"),
        ("DRAIN", "DRAIN"),
        ("DRAIN 1/3", "DRAIN"),
        ("DRAIN (agent)", "DRAIN"),
        ("NOLB", "DRAIN"),
        ("NOLB 1/3", "DRAIN"),
        ("MAINT", "MAINT"),
        ("MAINT (via pool-a/node-001)", "MAINT"),
        ("MAINT (resolution)", "MAINT"),
    ],
)
def test_every_haproxy_status_maps_onto_a_canonical_state(status: str, state: str) -> None:
    assert haproxy.canonical_state(status) == state


@pytest.mark.parametrize("status", ["", "no", "no checks", "OPEN", "up"])
def test_an_unknown_status_is_an_error(status: str) -> None:
    with pytest.raises(ValueError, match="unknown server status"):
        haproxy.canonical_state(status)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("pxname,svname,status\nweb,s1,UP", "no CSV header"),
        ("<html>503 Service Unavailable</html>", "no CSV header"),
        ("# pxname,svname,weight\nweb,s1,1", "no 'status' column"),
        ("# pxname,svname,status,weight\nweb,s1,UP", "line 2: 3 fields, the header has 4"),
        ("# pxname,svname,status,weight\nweb,s1,UP,heavy", r"line 2 \(web/s1\).*weight"),
        ("# pxname,svname,status\nweb,s1,SLEEPY", r"web/s1.*unknown server status"),
    ],
)
def test_a_garbled_show_stat_is_a_value_error(answer: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        haproxy.parse_stat(answer)


def test_show_map_entries() -> None:
    answer = "0x55ca488a4780 pool-a pool-b\n0x55ca48a76e50 pool-a dup\n0x55ca48a76e60 k a b"
    assert haproxy.parse_map(answer) == {"pool-a": "pool-b", "k": "a b"}
    assert haproxy.parse_map("") == {}  # an empty map answers the empty line alone


def test_a_garbled_show_map_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="line 2 is not"):
        haproxy.parse_map("0x55ca488a4780 pool-a pool-b\nwhatever")


# the error replies of HAProxy 2.6.12, word for word (each answer ends with an empty line)
@pytest.mark.parametrize(
    ("answer", "kind", "message"),
    [
        ("No such server.", "no_such_server", "No such server."),
        ("No such backend.", "no_such_backend", "No such backend."),
        (
            "Unknown map identifier. Please use #<id> or <file>.",
            "no_such_map",
            "Unknown map identifier.",
        ),
        ("Key not found.", "no_such_key", "Key not found."),
        ("entry not found.", "no_such_key", "entry not found."),
        ("Permission denied", "permission_denied", "Permission denied"),
        (
            "Unknown command, but maybe one of the following ones is a better match:\n"
            "  prompt                                  : toggle interactive mode with prompt\n"
            "  quit                                    : disconnect",
            "unknown_command",
            "Unknown command",
        ),
    ],
)
def test_error_replies_are_refusals_naming_replica_and_command(
    answer: str, kind: str, message: str
) -> None:
    error = haproxy.refusal("tcp://127.0.0.1:9999", "set server web/s9 state drain", answer)
    assert isinstance(error, GatewayRefused)
    assert error.kind == kind
    assert str(error) == f"tcp://127.0.0.1:9999: set server web/s9 state drain: {message}"


@pytest.mark.parametrize("answer", ["", "0x55ca488a4780 web web", "# pxname,svname"])
def test_other_answers_are_no_refusal(answer: str) -> None:
    assert haproxy.refusal("tcp://127.0.0.1:9999", "show map route.map", answer) is None
