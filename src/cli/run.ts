// Command-line surface: parses arguments with commander and dispatches to the commands. Every
// command returns its exit code; only main.ts ends the process. Errors the user can fix are
// CliErrors (message, exit 1); anything else is a bug and says so. The commands that only read
// end at once on a signal (untilInterrupted); apply, guest and sim handle it themselves.

import { Command, CommanderError, Option } from "commander";
import { QubesApiError } from "../providers/qubes/errors.js";
import { CliError, tell, untilInterrupted, write, type CliIO } from "./io.js";
import { packageVersion } from "./version.js";

const connectOption = (): Option =>
  new Option("--connect <how>", "how to reach Qubes: qubesd[:SOCKET] | qrexec | sim[:STATEFILE][?release=r4.2|r4.3|main] (env QUBES_IAC_CONNECT)");
const timeoutOption = (): Option => new Option("--timeout <seconds>", "timeout of each Admin API call").default("60");

export async function runCli(io: CliIO): Promise<number> {
  let exitCode = 0;
  const program = new Command("qubes-iac")
    .description("Declarative infrastructure-as-code for Qubes OS")
    .version(packageVersion(), "-V, --version")
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .exitOverride()
    .showHelpAfterError("(run with --help for usage)");

  program
    .command("validate")
    .description("check configuration files; makes no Admin API call")
    .argument("[paths...]", "config files or directories (default: qubes.yaml)")
    .option("--json", "print diagnostics as JSON")
    .addOption(new Option("--release <release>", "judge qrexec policy files by this release's qrexec only (default: all three; a problem of some is a warning)").choices(["r4.2", "r4.3", "main"]))
    .action(async (paths: string[], o: { json?: boolean; release?: "r4.2" | "r4.3" | "main" }) => {
      const { validateCommand } = await import("./commands/validate.js");
      exitCode = await untilInterrupted(io, () => validateCommand(io, paths, o));
    });

  const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
  program
    .command("plan")
    .description("read Qubes, compare it with the config and show the changes apply would make; changes nothing")
    .argument("[paths...]", "config files or directories (default: qubes.yaml)")
    .addOption(connectOption())
    .addOption(timeoutOption())
    .option("--parallelism <n>", "Admin API reads at once", "8")
    .option("--json", "print the JSON plan")
    .option("--out <file>", "save the plan for `qubes-iac apply FILE`")
    .option("--target <address>", "only this resource and what it depends on (qube.NAME, label.NAME, pool.NAME, properties, guest.NAME, guest.qube.NAME); repeatable", collect)
    .option("--exclude <address>", "leave this resource out; repeatable", collect)
    .option("--allow-restart", "let apply shut qubes down for changes Qubes makes only on halted qubes, and start them again")
    .option("--take-ownership <owner>", "take over the qubes, labels and pools of the config that owner OWNER manages (apply needs the same flag); repeatable", collect)
    .option("--detailed-exitcode", "exit 0 when there are no changes, 2 when there are, 1 on errors")
    .option("--deny-loosening", "exit 3 when a change loosens isolation (before 2 of --detailed-exitcode; 1 still wins)")
    .option("--no-color", "never colour the output (colour is used only on a terminal, and never with NO_COLOR)")
    .action(async (paths: string[], o: import("./commands/plan.js").PlanCommandOptions) => {
      const { planCommand } = await import("./commands/plan.js");
      exitCode = await untilInterrupted(io, () => planCommand(io, paths, o));
    });

  program
    .command("apply")
    .description("make the changes of a config's plan (computed now, or a saved plan file), after approval")
    .argument("[paths...]", "config files or directories (default: qubes.yaml), or one saved plan file")
    .addOption(connectOption())
    .addOption(timeoutOption())
    .option("--parallelism <n>", "Admin API reads, and independent steps, at once", "8")
    .option("--auto-approve", "do not ask for approval (needed without a terminal, and with --json)")
    .option("--allow-destroy", "with --auto-approve: also apply a plan that destroys qubes or pools")
    .option("--json", "print the plan and progress as JSON lines (needs --auto-approve)")
    .option("--target <address>", "only this resource and what it depends on; repeatable", collect)
    .option("--exclude <address>", "leave this resource out; repeatable", collect)
    .option("--allow-restart", "shut qubes down for changes Qubes makes only on halted qubes, and start them again")
    .option("--take-ownership <owner>", "take over what owner OWNER manages, as the plan says (also needed to apply a saved plan that does); repeatable", collect)
    .option("--kill-after-timeout", "kill (admin.vm.Kill) a qube whose shutdown did not finish within its shutdown_timeout")
    .option("--break-lock <id>", "first remove the lock a killed apply left: the id its refusal shows (docs/locking.md)")
    .option("--no-color", "never colour the output")
    .action(async (paths: string[], o: import("./commands/apply.js").ApplyCommandOptions) => {
      const { applyCommand } = await import("./commands/apply.js");
      exitCode = await applyCommand(io, paths, o);
    });

  program
    .command("release")
    .description("let go of a qube without destroying it: remove only qubes-iac's tag and records from it (after approval)")
    .argument("<address>", "the qube to release: qube.NAME")
    .argument("[paths...]", "config files or directories (default: qubes.yaml)")
    .addOption(connectOption())
    .addOption(timeoutOption())
    .option("--parallelism <n>", "Admin API reads at once", "8")
    .option("--auto-approve", "do not ask for approval (needed without a terminal, and with --json)")
    .option("--json", "print the plan and progress as JSON lines (needs --auto-approve)")
    .option("--break-lock <id>", "first remove the lock a killed apply left (docs/locking.md)")
    .option("--no-color", "never colour the output")
    .action(async (address: string, paths: string[], o: import("./commands/apply.js").ApplyCommandOptions) => {
      const { releaseCommand } = await import("./commands/apply.js");
      exitCode = await releaseCommand(io, address, paths, o);
    });

  program
    .command("export")
    .description("write the current system as a config: what an owner manages, or with --all every qube to adopt")
    .addOption(connectOption())
    .addOption(timeoutOption())
    .option("--parallelism <n>", "Admin API reads at once", "8")
    .option("--owner <name>", "the owner whose qubes, labels and pools to export (and the exported config's owner)")
    .option("--all", "every qube but dom0 (marked adopt: true), custom labels, pools and non-default global properties")
    .option("-o, --output <file>", "write the config to this new file instead of stdout")
    .option("--host-values", "keep what this host sets itself (default_kernel, default_pool_kernel, a qube's kernel version)")
    .option("--notes", "read and write the qubes' notes (R4.3 and later; without it notes, which may hold secrets, are never read)")
    .action(async (o: import("./commands/export.js").ExportCommandOptions) => {
      const { exportCommand } = await import("./commands/export.js");
      exitCode = await untilInterrupted(io, () => exportCommand(io, o));
    });

  program
    .command("show")
    .description("show the current state of what the config manages, as qubes-iac reads it, or a saved plan; changes nothing")
    .argument("[paths...]", "config files or directories (default: qubes.yaml), or one saved plan (plan --out FILE)")
    .addOption(connectOption())
    .addOption(timeoutOption())
    .option("--parallelism <n>", "Admin API reads at once", "8")
    .option("--json", "print the state as JSON")
    .action(async (paths: string[], o: import("./commands/show.js").ShowCommandOptions) => {
      const { showCommand } = await import("./commands/show.js");
      exitCode = await untilInterrupted(io, () => showCommand(io, paths, o));
    });

  program
    .command("policy")
    .description("print the dom0 qrexec policy that lets a management qube plan (and with --apply, apply) the config")
    .argument("[paths...]", "config files or directories (default: qubes.yaml)")
    .requiredOption("--mgmt <qube>", "the management qube that runs qubes-iac")
    .option("--apply", "also grant the calls apply makes (without it: plan only, read-only)")
    .option("--allow-policy-writes", "grant qrexec's policy admin services (policy.*) for the config's qrexec policy files, each by name: plan's reads, and with --apply their writes (the right to write a policy file is full control)")
    .addOption(connectOption().default(undefined, "none: from the config alone"))
    .addOption(timeoutOption())
    .action(async (paths: string[], o: import("./commands/policy.js").PolicyCommandOptions) => {
      const { policyCommand } = await import("./commands/policy.js");
      exitCode = await untilInterrupted(io, () => policyCommand(io, paths, o));
    });

  const sim = program.command("sim").description("the built-in qubesd simulator");
  sim
    .command("serve")
    .description("serve the Admin API on a Unix socket, state kept in a file, until interrupted")
    .requiredOption("--socket <path>", "Unix socket to listen on")
    .option("--state <file>", "state file (created from the fixture when missing)")
    .option("--reset", "discard the state file's contents and start from the fixture")
    .option("--log <file>", "append one JSON line per call")
    .option("--fixture <fixture>", "what a new or reset state starts from: default | laptop | generated:N (N qubes in all)", "default")
    .option("--release <release>", "the Qubes release to imitate: r4.2 | r4.3 | main (head = main); default: the state file's, main for a new one")
    .option("--latency-ms <ms>", "added to every call: N, or READ,WRITE for read-only and mutating calls")
    .option("--no-serial-writes", "with --latency-ms, let mutating calls overlap instead of queueing as in qubesd")
    .option("--fault <rule>", "inject a fault, METHOD[+ARG][/DEST]@WHICH=ACTION (see the simulator README); repeatable", collect)
    .action(async (o: import("./commands/sim.js").ServeOptions) => {
      const { simServe } = await import("./commands/sim.js");
      exitCode = await simServe(io, o);
    });
  sim
    .command("call")
    .description("send one raw Admin API call (payload from stdin when piped) and print the reply")
    .argument("<method>", "e.g. admin.vm.List")
    .argument("[dest]", "destination qube", "dom0")
    .argument("[arg]", "service argument", "")
    .addOption(connectOption())
    .addOption(timeoutOption())
    .option("--raw", "write the reply bytes unchanged")
    .action(async (method: string, dest: string, arg: string, o: { connect?: string; timeout?: string; raw?: boolean }) => {
      const { simCall } = await import("./commands/sim.js");
      exitCode = await simCall(io, method, dest, arg, o);
    });

  const guest = program.command("guest").description("VMs reached through the QEMU guest agent (see docs/guests.md)");
  const guestTarget = async (text: string): Promise<import("../providers/qga/spec.js").AgentSpec> => {
    const { parseAgentTarget } = await import("../providers/qga/spec.js");
    const spec = parseAgentTarget(text);
    if ("error" in spec) throw new CliError(`guest '${text}': ${spec.error}`);
    return spec;
  };
  guest
    .command("fsfreeze")
    .description("freeze the guest's filesystems, run COMMAND on the host, and always thaw")
    .argument("<guest>", "socket:PATH | qrexec:QUBE[:SERVICE] | a socket path")
    .argument("<command...>", "host command to run while frozen (after --)")
    .option("--timeout <seconds>", "deadline for reaching the agent and for each agent call", "30")
    .action(async (target: string, command: string[], o: { timeout: string }) => {
      const { guestFsfreeze } = await import("./commands/guest.js");
      exitCode = await guestFsfreeze(io, await guestTarget(target), command, { timeoutMs: Number(o.timeout) * 1000 });
    });
  guest
    .command("thaw")
    .description("thaw a guest left frozen (e.g. by a killed fsfreeze)")
    .argument("<guest>", "socket:PATH | qrexec:QUBE[:SERVICE] | a socket path")
    .action(async (target: string) => {
      const { guestThaw } = await import("./commands/guest.js");
      exitCode = await guestThaw(io, await guestTarget(target));
    });

  try {
    await program.parseAsync(io.argv, { from: "user" });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 1;
    if (e instanceof CliError) {
      tell(io.stderr, `qubes-iac: ${e.message}`);
      return e.exitCode;
    }
    if (e instanceof QubesApiError) {
      tell(io.stderr, `qubes-iac: ${e.message}`);
      return 1;
    }
    tell(io.stderr, `qubes-iac: internal error (this is a bug, please report it): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    return 1;
  }
}
