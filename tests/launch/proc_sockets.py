"""The TCP sockets processes listen on, read from ``/proc`` (what the run-processes tests
check a local run against: loopback only)."""

import ipaddress
import os


def _listening_inodes() -> dict[int, str]:
    """``{socket inode: local address}`` of every listening TCP socket (IPv4 and IPv6)."""
    listening = {}
    for path, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            with open(path) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            address_hex = fields[1].split(":")[0]
            listening[int(fields[9])] = proc_address(address_hex, width)
    return listening


def proc_address(hex_text: str, width: int) -> str:
    """The address a ``/proc/net/tcp`` (width 8) or ``tcp6`` (width 32) row prints in hex."""
    raw = bytes.fromhex(hex_text)
    # /proc prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words) if width == 8 else ipaddress.IPv6Address(words)
    return str(address)


def listening_addresses(pids: list[int]) -> list[tuple[int, str]]:
    """``(pid, local address)`` of every TCP socket the given processes listen on."""
    listening = _listening_inodes()
    found = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:  # closed meanwhile (the listing's own descriptor, for one)
                continue
            if link.startswith("socket:["):
                inode = int(link[len("socket:[") : -1])
                if inode in listening:
                    found.append((pid, listening[inode]))
    return found


def is_loopback(address: str) -> bool:
    """Loopback, IPv4-mapped IPv6 loopback included."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
