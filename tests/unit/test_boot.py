from __future__ import annotations

from pathlib import Path

from appliance import boot
from appliance.config.model import Interfaces


def test_selected_interfaces_apply_include_then_exclude() -> None:
    names = ["lo", "eth0", "eth1", "docker0", "veth12"]
    assert boot.selected_interfaces(names, Interfaces((".*",), ("^lo$", "^docker", "^veth"))) == [
        "eth0",
        "eth1",
    ]
    assert boot.selected_interfaces(names, Interfaces(("^eth1$",), ())) == ["eth1"]


def test_write_sysctls_changes_only_what_differs(tmp_path: Path) -> None:
    (tmp_path / "net/ipv4/conf/eth0").mkdir(parents=True)
    (tmp_path / "net/ipv4/ip_forward").write_text("0\n")
    (tmp_path / "net/ipv4/conf/eth0/rp_filter").write_text("0\n")
    settings = [
        ("net/ipv4/ip_forward", "1"),
        ("net/ipv4/conf/eth0/rp_filter", "0"),
        ("net/ipv4/not_there", "1"),
    ]
    changes = boot.write_sysctls(settings, tmp_path)
    assert changes == [boot.SysctlChange("net.ipv4.ip_forward", "0", "1")]
    assert (tmp_path / "net/ipv4/ip_forward").read_text() == "1\n"
    assert boot.write_sysctls(settings, tmp_path) == []


def test_interface_sysctls() -> None:
    assert ("net/ipv4/conf/eth0/rp_filter", "0") in boot.interface_sysctls(["eth0"])


def test_bpffs_mounted_reads_mount_table(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw 0 0\n")
    assert boot.bpffs_mounted(mounts)
    mounts.write_text("sysfs /sys sysfs rw 0 0\n")
    assert not boot.bpffs_mounted(mounts)


def test_note_restart_is_false_once_then_true(tmp_path: Path) -> None:
    assert boot.note_restart("node1", "bgp", tmp_path) is False
    assert boot.note_restart("node1", "bgp", tmp_path) is True
    assert boot.note_restart("node2", "bgp", tmp_path) is False
