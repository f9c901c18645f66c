// Builds (or takes from the cache) the tiny test guest with scripts/qga-vm-image.sh and boots it
// under QEMU software emulation (no KVM): a Debian cloud kernel, a busybox initramfs running the
// host's qemu-ga on a virtio-serial port, and a fresh ext4 disk image on virtio-blk mounted at
// /mnt/data. Everything lives in a temp dir; the VM has no network.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { AgentSpec } from "../../../src/providers/qga/spec.js";
import { repoRoot } from "../../helpers/shared.js";
import { QEMU_GA, requireProgram } from "./agent.js";

const run = promisify(execFile);

export const QEMU_SYSTEM = requireProgram(["/usr/bin/qemu-system-x86_64"], "qemu-system-x86_64", "qemu-system-x86");
export const MKFS_EXT4 = requireProgram(["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"], "mkfs.ext4", "e2fsprogs");
export const DEBUGFS = requireProgram(["/usr/sbin/debugfs", "/sbin/debugfs"], "debugfs", "e2fsprogs");
/** Null (skip, outside CI) when a tool is missing; requireProgram already threw under CI=true. */
export const VM_TOOLS_PRESENT = Boolean(QEMU_GA && QEMU_SYSTEM && MKFS_EXT4 && DEBUGFS);

/** The data disk's mount point inside the guest (see the builder's /init). */
export const GUEST_DATA = "/mnt/data";
export const GUEST_HOSTNAME = "qga-test-vm";

export type GuestImage = { dir: string; manifest: string; buildMs: number };

export async function buildGuestImage(): Promise<GuestImage> {
  const started = Date.now();
  const script = join(repoRoot, "scripts", "qga-vm-image.sh");
  let stdout: string;
  try {
    ({ stdout } = await run("bash", [script], { timeout: 300_000, maxBuffer: 4 * 1024 * 1024 }));
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`building the test guest failed: ${err.stderr?.trim() || err.message}`);
  }
  const dir = stdout.trim().split("\n").at(-1) ?? "";
  if (!existsSync(join(dir, "vmlinuz"))) throw new Error(`the image builder printed ${JSON.stringify(dir)}, which holds no vmlinuz`);
  return { dir, manifest: readFileSync(join(dir, "manifest"), "utf8"), buildMs: Date.now() - started };
}

export type TestVm = {
  dir: string;
  disk: string;
  /** The host side of the agent's virtio-serial channel. */
  socket: string;
  spec: AgentSpec;
  process: ChildProcess;
  /** Resolves with QEMU's exit status when it ends. */
  exited: Promise<{ code: number | null; signal: string | null }>;
  console(): string;
  /** Kills QEMU if it still runs and removes the temp dir. */
  destroy(): Promise<void>;
};

export async function bootGuest(image: GuestImage, opts: { diskMiB?: number } = {}): Promise<TestVm> {
  if (!QEMU_SYSTEM || !MKFS_EXT4) throw new Error("qemu-system-x86_64 and mkfs.ext4 are needed");
  const dir = mkdtempSync(join(tmpdir(), "qiac-vm-"));
  const disk = join(dir, "data.img");
  await run(MKFS_EXT4, ["-q", "-F", "-L", "qiacdata", disk, `${opts.diskMiB ?? 32}M`]);
  const socket = join(dir, "qga.sock");
  const consoleLog = join(dir, "console.log");
  // prettier-ignore
  const args = [
    "-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "1", "-m", "256",
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-net", "none",
    "-serial", `file:${consoleLog}`,
    "-kernel", join(image.dir, "vmlinuz"), "-initrd", join(image.dir, "initrd.gz"),
    "-append", "console=ttyS0 panic=-1 quiet loglevel=3",
    "-device", "virtio-serial-pci,id=vs0",
    "-chardev", `socket,path=${socket},server=on,wait=off,id=qga0`,
    "-device", "virtserialport,bus=vs0.0,chardev=qga0,name=org.qemu.guest_agent.0",
    "-drive", `file=${disk},if=none,id=data0,format=raw`,
    "-device", "virtio-blk-pci,drive=data0",
  ];
  const child = spawn(QEMU_SYSTEM, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const readConsole = (): string => (existsSync(consoleLog) ? readFileSync(consoleLog, "utf8") : "") + (stderr ? `\n[qemu stderr] ${stderr}` : "");
  return {
    dir,
    disk,
    socket,
    spec: { kind: "socket", path: socket },
    process: child,
    exited,
    console: readConsole,
    destroy: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A file's content read straight from the ext4 image (after the guest is off), or null if absent. */
export async function readFromDiskImage(disk: string, path: string): Promise<Buffer | null> {
  if (!DEBUGFS) throw new Error("debugfs is needed");
  const { stdout, stderr } = await run(DEBUGFS, ["-R", `cat ${path}`, disk], { encoding: "buffer", maxBuffer: 64 * 1024 * 1024 });
  if (stderr.toString().includes("File not found")) return null;
  return stdout;
}
