"""DDS stays on this machine: the loopback-only Fast DDS profile, and real rclpy traffic between two
processes that load it (a six-camera frame + odometry, and /tf)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vfdepth_ros import dds

HELPER = Path(__file__).resolve().parent / "dds_helpers.py"
NS = {"d": "http://www.eprosima.com"}
PROCESS_TIMEOUT_S = 90.0


# --------------------------------------------------------------------------------------------------
# (a) the profile itself


@pytest.fixture(scope="module")
def profile() -> ET.Element:
    assert dds.PROFILE_PATH.is_file(), dds.PROFILE_PATH
    return ET.parse(dds.PROFILE_PATH).getroot()


def _transports(profile: ET.Element) -> dict:
    out = {}
    for desc in profile.findall("d:profiles/d:transport_descriptors/d:transport_descriptor", NS):
        out[desc.findtext("d:transport_id", namespaces=NS)] = desc
    return out


def _participants(profile: ET.Element) -> list:
    return profile.findall("d:profiles/d:participant", NS)


def test_profile_is_the_default_participant_profile(profile):
    parts = _participants(profile)
    assert len(parts) == 1
    assert parts[0].get("is_default_profile") == "true"


def test_profile_turns_builtin_transports_off(profile):
    rtps = _participants(profile)[0].find("d:rtps", NS)
    assert rtps.findtext("d:useBuiltinTransports", namespaces=NS).strip() == "false"


def test_profile_uses_only_shm_32mib_and_udpv4_on_lo(profile):
    transports = _transports(profile)
    used = [t.text.strip() for t in _participants(profile)[0].findall("d:rtps/d:userTransports/d:transport_id", NS)]
    assert sorted(used) == sorted(transports), "every declared transport is used, and only those"
    types = {tid: transports[tid].findtext("d:type", namespaces=NS).strip() for tid in used}
    assert sorted(types.values()) == ["SHM", "UDPv4"]
    for tid, kind in types.items():
        desc = transports[tid]
        if kind == "SHM":
            assert int(desc.findtext("d:segment_size", namespaces=NS)) == 32 * 1024 * 1024
        else:
            allow = desc.findall("d:interfaces/d:allowlist/d:interface", NS)
            assert [a.get("name") for a in allow] == ["lo"]
            assert desc.find("d:interfaces/d:blocklist", NS) is None


def test_profile_initial_peers_are_loopback_only(profile):
    addrs = [a.text.strip() for a in profile.iter("{http://www.eprosima.com}address")]
    assert addrs, "expected explicit loopback initial peers"
    assert all(a.startswith("127.") for a in addrs), addrs


def test_loopback_env_sets_only_the_current_profile_variable():
    env = dds.loopback_env(base={"PATH": "/usr/bin", "ROS_LOCALHOST_ONLY": "1",
                                 "FASTRTPS_DEFAULT_PROFILES_FILE": "/old.xml"}, domain_id=123)
    assert Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]) == dds.PROFILE_PATH
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in env  # deprecated name: Fast DDS 3 warns about it
    assert env["ROS_DOMAIN_ID"] == "123"
    assert env["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"
    assert "ROS_LOCALHOST_ONLY" not in env
    assert env["PATH"] == "/usr/bin"
    assert dds.profile_active(env)
    assert not dds.profile_active({"PATH": "/usr/bin"})


def test_conftest_applied_the_profile_to_this_session():
    assert dds.profile_active(os.environ)


def test_ros_domain_id_fixture_is_distinct_and_exported(ros_domain_id):
    assert 100 <= ros_domain_id < 200
    assert os.environ["ROS_DOMAIN_ID"] == str(ros_domain_id)


_SEEN_DOMAIN_IDS: list = []


@pytest.mark.parametrize("case", [0, 1])
def test_ros_domain_ids_differ_between_tests(ros_domain_id, case):
    _SEEN_DOMAIN_IDS.append(ros_domain_id)
    if case == 1:
        assert len(set(_SEEN_DOMAIN_IDS)) == len(_SEEN_DOMAIN_IDS), _SEEN_DOMAIN_IDS


# --------------------------------------------------------------------------------------------------
# (b), (c) two real rclpy processes


def _rclpy_available() -> bool:
    res = subprocess.run([sys.executable, "-c", "import rclpy"], capture_output=True, stdin=subprocess.DEVNULL)
    return res.returncode == 0


def _json_lines(text: str) -> list:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def _run_pair(mode: str, domain_id: int) -> tuple:
    """Start the subscriber, wait until it says ready, start the publisher; return both reports."""
    env = dds.loopback_env(domain_id=domain_id)
    cmd = [sys.executable, str(HELPER)]
    sub = subprocess.Popen(cmd + ["sub", mode, "--timeout", "60"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    pub = None
    try:
        first = sub.stdout.readline()  # blocks until the subscriber has created its subscriptions
        assert '"ready": true' in first, f"subscriber did not start: {first!r} {sub.stderr.read() if sub.poll() is not None else ''}"
        pub = subprocess.Popen(cmd + ["pub", mode, "--timeout", "60"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        pub_out, pub_err = pub.communicate(timeout=PROCESS_TIMEOUT_S)
        sub_out, sub_err = sub.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        for p in (sub, pub):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    pub_reports, sub_reports = _json_lines(pub_out), _json_lines(sub_out)
    assert pub.returncode == 0 and pub_reports, f"publisher failed ({pub.returncode}): {pub_out}\n{pub_err[-3000:]}"
    assert sub.returncode == 0 and sub_reports, f"subscriber failed ({sub.returncode}): {sub_out}\n{sub_err[-3000:]}"
    return pub_reports[-1], sub_reports[-1]


def _print_timings(what: str, pub: dict, sub: dict) -> None:
    latency_ms = (sub["last_recv_wall_time"] - pub["publish_wall_time"]) * 1e3
    print(f"\n{what}: discovery {pub['discovery_s']:.2f} s, publish -> last message received {latency_ms:.1f} ms, "
          f"all acked after {pub['acked_s'] * 1e3:.1f} ms")


@pytest.mark.ros
def test_six_camera_frame_and_odometry_cross_processes(ros_domain_id):
    if not _rclpy_available():
        pytest.skip("rclpy is not importable (make install installs it)")
    t0 = time.monotonic()
    pub, sub = _run_pair("frame", ros_domain_id)
    assert pub["profile_active"] and sub["profile_active"]
    assert pub["all_acked"]
    assert sub["expected"] == 6 * 2 + 1
    assert sub["received"] == sub["expected"] and not sub["missing"]
    assert sub["errors"] == []
    _print_timings("6 x 384x640 rgb8 + CameraInfo + Odometry", pub, sub)
    print(f"whole exchange incl. process start: {time.monotonic() - t0:.1f} s")


@pytest.mark.ros
def test_tf_message_cross_processes(ros_domain_id):
    if not _rclpy_available():
        pytest.skip("rclpy is not importable (make install installs it)")
    res = subprocess.run([sys.executable, "-c", "from tf2_msgs.msg import TFMessage"], capture_output=True,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        pytest.skip("tf2_msgs is not importable (make install builds it: tools/build_tf2_msgs.py)")
    pub, sub = _run_pair("tf", ros_domain_id)
    assert pub["all_acked"]
    assert sub["received"] == 1 and sub["errors"] == []
    _print_timings("tf2_msgs/TFMessage", pub, sub)


@pytest.mark.ros
def test_no_process_warns_about_a_deprecated_variable(ros_domain_id):
    """A participant started with loopback_env (even from a shell that still exports the old Fast DDS 2
    variable) prints no deprecation warning: Fast DDS 3 warns on FASTRTPS_DEFAULT_PROFILES_FILE."""
    if not _rclpy_available():
        pytest.skip("rclpy is not importable (make install installs it)")
    base = dict(os.environ, FASTRTPS_DEFAULT_PROFILES_FILE=str(dds.PROFILE_PATH))
    code = ("import rclpy; rclpy.init(); n = rclpy.create_node('deprecation_probe'); "
            "n.create_publisher(__import__('std_msgs.msg', fromlist=['String']).String, 'probe', 1); "
            "n.destroy_node(); rclpy.shutdown(); print('ok')")
    res = subprocess.run([sys.executable, "-c", code], env=dds.loopback_env(base, domain_id=ros_domain_id),
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "ok" in res.stdout, out
    assert "deprecated" not in out.lower(), out
    # the check can fail: the old variable alone does make Fast DDS warn
    old = dict(dds.loopback_env(base, domain_id=ros_domain_id), FASTRTPS_DEFAULT_PROFILES_FILE=str(dds.PROFILE_PATH))
    res = subprocess.run([sys.executable, "-c", code], env=old, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60)
    assert "deprecated" in (res.stdout + res.stderr).lower()
