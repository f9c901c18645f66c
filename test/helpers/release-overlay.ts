// A transport that makes the simulator's property lists those of a recorded release: dom0's
// and the globals' lists as that release's qubesd sent them (differences.jsonl rows 26-29), and
// a qube's lists without the properties the recording shows that release lacks for its class
// (rows 18-25, compared with the head's). Everything else goes to the simulator unchanged, so
// a plan test sees what a planner on R4.2 or R4.3 reads, computed from the recordings alone.
import type { AdminCall, Transport } from "../../src/providers/qubes/transport.js";
import { readJsonl, replyBytes } from "./shared.js";

export type RecordedRelease = "qubesd-r4.2" | "qubesd-r4.3";

const CLASS_ROWS: Record<string, number> = { AppVM: 18, TemplateVM: 20, StandaloneVM: 22, DispVM: 24 };

const listed = (dir: string, line: number): Set<string> => {
  const row = readJsonl(`conformance/${dir}/differences.jsonl`)[line - 1];
  if (!row) throw new Error(`no row ${line} in ${dir}/differences.jsonl`);
  return new Set(replyBytes(row).subarray(2).toString("utf8").split("\n").filter(Boolean));
};

/** The properties the recorded release lacks for each class, against the head's recording. */
export function lackedByClass(release: RecordedRelease): Map<string, Set<string>> {
  return new Map(
    Object.entries(CLASS_ROWS).map(([klass, line]) => {
      const theirs = listed(release, line);
      return [klass, new Set([...listed("qubesd", line)].filter((p) => !theirs.has(p)))];
    }),
  );
}

/** A qube's class is asked of the simulator (admin.vm.List to the qube) to filter its lists. */
export function releaseOverlay(inner: Transport, release: RecordedRelease): Transport {
  const classOf = async (vm: string): Promise<string | undefined> =>
    /class=([A-Za-z]+)/.exec((await inner.call({ method: "admin.vm.List", dest: vm, arg: "" })).toString("utf8"))?.[1];
  const lacked = lackedByClass(release);
  const recorded = (line: number): Buffer => {
    const row = readJsonl(`conformance/${release}/differences.jsonl`)[line - 1];
    if (!row) throw new Error(`no row ${line}`);
    return replyBytes(row);
  };
  const filter = (reply: Buffer, drop: Set<string>): Buffer => {
    if (reply[0] !== 0x30) return reply;
    const lines = reply.subarray(2).toString("utf8").split("\n");
    return Buffer.concat([reply.subarray(0, 2), Buffer.from(lines.filter((l) => !drop.has(l.split(" ")[0] ?? "")).join("\n"), "utf8")]);
  };
  return {
    description: `${inner.description} as ${release}`,
    source: inner.source,
    visibility: inner.visibility,
    stream: (c) => inner.stream(c),
    close: () => inner.close(),
    call: async (c: AdminCall, o) => {
      if (c.dest === "dom0" && c.method === "admin.vm.property.List") return recorded(26);
      if (c.dest === "dom0" && c.method === "admin.property.List") return recorded(28);
      const reply = await inner.call(c, o);
      if (c.dest === "dom0" && c.method === "admin.property.GetAll") return filter(reply, new Set(["maxmem", "no_cpus"].filter((p) => !listed(release, 28).has(p))));
      if (c.dest !== "dom0" && (c.method === "admin.vm.property.List" || c.method === "admin.vm.property.GetAll")) {
        const drop = lacked.get((await classOf(c.dest)) ?? "");
        return drop ? filter(reply, drop) : reply;
      }
      return reply;
    },
  };
}
