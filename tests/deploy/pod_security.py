"""The Kubernetes "restricted" Pod Security Standard, as checks on a rendered pod spec.

Follows https://kubernetes.io/docs/concepts/security/pod-security-standards/ (baseline + restricted,
latest version) field by field, so a pod that passes here is admitted by a namespace labelled
`pod-security.kubernetes.io/enforce: restricted`.
"""

from __future__ import annotations

# Restricted: the only volume types allowed.
ALLOWED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}
# Baseline: sysctls that are safe to set.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
ALLOWED_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}


def all_containers(pod: dict) -> list[dict]:
    return [*pod.get("initContainers", []), *pod.get("containers", []), *pod.get("ephemeralContainers", [])]


def violations(pod: dict) -> list[str]:
    """Every way `pod` (a PodSpec) breaks the restricted standard; empty when it complies."""
    out: list[str] = []
    psc = pod.get("securityContext") or {}

    # --- baseline ---
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            out.append(f"pod: {field} is set")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        out.append("pod: windowsOptions.hostProcess is set")
    for sysctl in psc.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            out.append(f"pod: unsafe sysctl {sysctl['name']}")
    out += _selinux("pod", psc.get("seLinuxOptions"))
    out += _apparmor("pod", psc.get("appArmorProfile"))
    if (psc.get("seccompProfile") or {}).get("type") == "Unconfined":
        out.append("pod: seccompProfile Unconfined")
    if psc.get("runAsUser") == 0:
        out.append("pod: runAsUser 0")

    # --- restricted: volumes ---
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUME_TYPES:
            out.append(f"volume {volume['name']}: type {sorted(kinds - ALLOWED_VOLUME_TYPES)} not allowed")

    for c in all_containers(pod):
        name = f"container {c['name']}"
        csc = c.get("securityContext") or {}
        # baseline
        if csc.get("privileged"):
            out.append(f"{name}: privileged")
        if (csc.get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"{name}: windowsOptions.hostProcess")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{name}: hostPort {port['hostPort']}")
        if csc.get("procMount", "Default") != "Default":
            out.append(f"{name}: procMount {csc['procMount']}")
        out += _selinux(name, csc.get("seLinuxOptions"))
        out += _apparmor(name, csc.get("appArmorProfile"))
        # restricted
        if csc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: adds capabilities {caps['add']}")
        if csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            out.append(f"{name}: runAsNonRoot is not true")
        if csc.get("runAsUser") == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ALLOWED_SECCOMP:
            out.append(f"{name}: seccompProfile {seccomp!r}, want RuntimeDefault or Localhost")
    return out


def _selinux(where: str, opts: dict | None) -> list[str]:
    if not opts:
        return []
    out = []
    if opts.get("type", "") not in ALLOWED_SELINUX_TYPES:
        out.append(f"{where}: seLinuxOptions.type {opts['type']}")
    if opts.get("user") or opts.get("role"):
        out.append(f"{where}: seLinuxOptions user/role set")
    return out


def _apparmor(where: str, profile: dict | None) -> list[str]:
    if profile and profile.get("type") == "Unconfined":
        return [f"{where}: appArmorProfile Unconfined"]
    return []
