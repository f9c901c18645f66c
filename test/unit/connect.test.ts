import { describe, expect, it } from "vitest";
import { chooseConnection, describeChoice, parseConnectSpec, type HostProbe } from "../../src/providers/qubes/connect.js";

const probe = (files: string[], sockets: string[] = [], env: Record<string, string> = {}): HostProbe => ({
  env: { PATH: "/usr/local/bin:/usr/bin", ...env },
  cwd: "/home/user/cfg",
  exists: (p) => files.includes(p) || sockets.includes(p),
  isSocket: (p) => sockets.includes(p),
});

describe("connection choice", () => {
  it("parses explicit specs", () => {
    expect(parseConnectSpec("qubesd", "/w")).toEqual({ ok: true, spec: { kind: "qubesd", socketPath: "/var/run/qubesd.sock" } });
    expect(parseConnectSpec("qubesd:/tmp/s.sock", "/w")).toEqual({ ok: true, spec: { kind: "qubesd", socketPath: "/tmp/s.sock" } });
    expect(parseConnectSpec("qubesd:rel.sock", "/w")).toEqual({ ok: true, spec: { kind: "qubesd", socketPath: "/w/rel.sock" } });
    expect(parseConnectSpec("qrexec", "/w")).toEqual({ ok: true, spec: { kind: "qrexec", command: "qrexec-client-vm" } });
    expect(parseConnectSpec("sim", "/w")).toEqual({ ok: true, spec: { kind: "sim", statePath: "/w/.qubes-iac/sim-state.json" } });
    expect(parseConnectSpec("sim:st.json", "/w")).toEqual({ ok: true, spec: { kind: "sim", statePath: "/w/st.json" } });
    expect(parseConnectSpec("ssh", "/w").ok).toBe(false);
    expect(parseConnectSpec("qrexec:x", "/w").ok).toBe(false);
  });

  it("takes the release of the embedded simulator as ?release=R (head is main)", () => {
    expect(parseConnectSpec("sim:st.json?release=r4.2", "/w")).toEqual({ ok: true, spec: { kind: "sim", statePath: "/w/st.json", release: "r4.2" } });
    expect(parseConnectSpec("sim?release=head", "/w")).toEqual({ ok: true, spec: { kind: "sim", statePath: "/w/.qubes-iac/sim-state.json", release: "main" } });
    expect(parseConnectSpec("sim:?release=r4.3", "/w")).toEqual({ ok: true, spec: { kind: "sim", statePath: "/w/.qubes-iac/sim-state.json", release: "r4.3" } });
    expect(parseConnectSpec("sim:st.json?release=r5", "/w")).toEqual({ ok: false, error: "unknown release 'r5': use r4.2, r4.3 or main (head is main)" });
    expect(parseConnectSpec("sim:st.json?fixture=x", "/w")).toEqual({ ok: false, error: "'sim' takes ?release=r4.2|r4.3|main, not '?fixture=x'" });
    const env = chooseConnection(undefined, probe([], [], { QUBES_IAC_CONNECT: "sim:st.json?release=r4.3" }));
    expect(env).toMatchObject({ ok: true, choice: { spec: { kind: "sim", release: "r4.3" } } });
    if (env.ok) expect(describeChoice(env.choice, "/home/user/cfg")).toBe("using the embedded simulator of Qubes r4.3, state in st.json (QUBES_IAC_CONNECT)");
  });

  it("prefers --connect over the environment, and both over detection", () => {
    const p = probe([], ["/var/run/qubesd.sock"], { QUBES_IAC_CONNECT: "sim" });
    expect(chooseConnection("qrexec", p)).toMatchObject({ ok: true, choice: { spec: { kind: "qrexec" }, reason: "--connect" } });
    expect(chooseConnection(undefined, p)).toMatchObject({ ok: true, choice: { spec: { kind: "sim" }, reason: "QUBES_IAC_CONNECT" } });
    expect(chooseConnection(undefined, probe([], [], { QUBES_IAC_CONNECT: "bogus" }))).toMatchObject({ ok: false, error: expect.stringMatching(/^QUBES_IAC_CONNECT: unknown/) });
  });

  it("detects dom0, then a management qube, then a machine without Qubes", () => {
    expect(chooseConnection(undefined, probe(["/etc/qubes-release"], ["/var/run/qubesd.sock"]))).toMatchObject({ ok: true, choice: { spec: { kind: "qubesd" } } });
    expect(chooseConnection(undefined, probe(["/usr/bin/qrexec-client-vm"]))).toMatchObject({ ok: true, choice: { spec: { kind: "qrexec" } } });
    const sim = chooseConnection(undefined, probe([]));
    expect(sim).toMatchObject({ ok: true, choice: { spec: { kind: "sim", statePath: "/home/user/cfg/.qubes-iac/sim-state.json" } } });
    if (sim.ok) expect(describeChoice(sim.choice, "/home/user/cfg")).toBe("using the embedded simulator, state in .qubes-iac/sim-state.json (no Qubes OS detected)");
  });

  it("never falls back to the simulator on a Qubes machine whose socket is unreachable", () => {
    const r = chooseConnection(undefined, probe(["/etc/qubes-release"]));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/refusing to fall back to the simulator/);
    // a regular file where the socket should be is not a socket
    expect(chooseConnection(undefined, probe(["/etc/qubes-release", "/var/run/qubesd.sock"])).ok).toBe(false);
  });
});
