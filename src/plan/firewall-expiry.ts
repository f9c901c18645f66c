// Firewall rules with `expire`: qubesd drops a rule whose time has passed from
// admin.vm.firewall.Get (qubes/firewall.py Rule.api_rule is None once Expire.expired, on release4.2,
// release4.3 and main; differences.jsonl firewall rows), so such a rule in the config would be
// sent on every apply and never read back. A rule that has expired is a located plan error; one
// that will expire is a warning saying when. Pure: the time is the plan's `now`.

import { locate, type DesiredQube } from "../model/desired.js";
import { parseFirewallRule } from "../model/qubes-rules.js";
import type { DiffContext } from "./_context.js";
import { planDiagnostic } from "./codes.js";

const iso = (seconds: number): string => new Date(seconds * 1000).toISOString().replace(".000Z", "Z");

export function checkFirewallExpiry(ctx: DiffContext, q: DesiredQube): void {
  const now = ctx.options.now;
  if (q.firewall === undefined || now === undefined) return;
  for (const [i, line] of q.firewall.entries()) {
    const parsed = parseFirewallRule(line);
    const expire = parsed.ok ? parsed.rule.expire : undefined;
    if (expire === undefined) continue;
    const o = { location: locate(q, `firewall.${i}`), address: `qube.${q.name}` };
    // qubesd compares whole seconds: a rule is gone once its time is before now.
    if (expire * 1000 <= now) {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-E140", `qube ${q.name}: firewall rule ${i + 1} expired at ${iso(expire)}; qubesd drops an expired rule, so it would be set again on every apply`, {
          ...o,
          hint: "remove the rule, or give it a later expire",
        }),
      );
    } else {
      ctx.diagnostics.push(
        planDiagnostic("QIAC-W140", `qube ${q.name}: firewall rule ${i + 1} expires at ${iso(expire)}; until then plans show no change for it, from then on this plan's config is refused (QIAC-E140)`, {
          ...o,
          hint: "remove the rule from the config once it has expired",
        }),
      );
    }
  }
}
