// Which qube specifications qrexec takes in which place (qrexec/policy/parser.py: the Source,
// Target and Redirect classes each token class inherits from), and lines its parser refuses, in
// both syntaxes: each refused line gives at least one error, each accepted one none.
import { describe, expect, test } from "vitest";
import { checkToken, parsePolicyText } from "../../src/config/policy/index.js";
import type { Diagnostic } from "../../src/model/diagnostics.js";
import { RELEASE_IDS } from "../../src/model/release.js";

const at = { file: "f", line: 1, column: 1 };
const accepts = (token: string, role: "source" | "target" | "redirect"): boolean => {
  const errors: string[] = [];
  const ok = checkToken(token, role, "main", at, (code) => void (code.startsWith("QIAC-E") && errors.push(code)));
  return ok && errors.length === 0;
};

// token → [source, target, redirect]
const MATRIX: ReadonlyArray<[string, boolean, boolean, boolean]> = [
  ["work", true, true, true],
  ["dom0", true, true, true],
  ["uuid:d8a249f1-b02b-4944-a9e5-437def2fbe2c", true, true, true],
  ["*", true, true, false],
  ["@anyvm", true, true, false],
  ["@adminvm", true, true, true],
  ["@default", false, true, false],
  ["@dispvm", false, true, true],
  ["@dispvm:default-dvm", true, true, true],
  ["@dispvm:@tag:dvms", true, true, false],
  ["@type:AppVM", true, true, false],
  ["@tag:work", true, true, false],
  ["@uuid:d8a249f1-b02b-4944-a9e5-437def2fbe2c", false, false, false],
  ["@invalid", false, false, false],
  ["@dispvm:", false, false, false],
  ["@dispvm:@tag:", false, false, false],
  ["@tag:", false, false, false],
  ["@type:", false, false, false],
  ["@dispvm:@anyvm", false, false, false],
  ["", false, false, false],
];

test.each(MATRIX)("%s: source %s, target %s, redirect %s", (token, source, target, redirect) => {
  expect([accepts(token, "source"), accepts(token, "target"), accepts(token, "redirect")]).toEqual([source, target, redirect]);
});

const errorsOf = (text: string, syntax: "policy" | "service", release: (typeof RELEASE_IDS)[number]): Diagnostic[] =>
  parsePolicyText(`${text}\n`, release, { file: "f", syntax }).diagnostics.filter((d) => d.severity === "error");

describe.each(RELEASE_IDS)("%s", (release) => {
  const refusedPolicy = [
    "my.Service +arg @dispvm @default allow",
    "my.Service +arg @default @default allow",
    "my.Service +arg @anyvm @default allow target=@dispvm:@tag:dvms",
    "my.Service +arg @anyvm @default allow target=@tag:work",
    "my.Service +arg @anyvm @default deny target=work",
    "my.Service +arg @anyvm @anyvm deny default_target=work",
    "my.Service +arg @anyvm @anyvm deny user=user",
    "my.Service +arg @anyvm @anyvm allow default_target=work",
    "my.Service +arg @anyvm @anyvm allow bogus=1",
    "my.Service +arg @anyvm @anyvm allow,target=work",
    "my.Service +arg @anyvm @anyvm bogus",
    "my.Service +arg @anyvm @anyvm",
    "my.Service +arg @bogus @anyvm allow",
    "my.Service +arg @anyvm @bogus deny",
    "my.Service +arg @anyvm @anyvm allow extra",
    "my.Service +arg @anyvm @default allow",
    "my.Service +arg @anyvm @anyvm allow notify",
    "my.Service +arg @anyvm @anyvm allow notify=sometimes",
    "my.Service +arg @anyvm @anyvm allow autostart=1",
    "my.Service +arg @anyvm @anyvm allow user=a user=b",
    "* +arg @anyvm @default allow",
    "my+Service * @anyvm @anyvm allow",
    "my.Service arg @anyvm @anyvm allow",
    "!include",
    "!include a b",
    "!include-service my.Service include/x",
    "!unknown x",
    "!compat-4.0 extra",
  ];
  test.each(refusedPolicy)("refused: %s", (line) => {
    expect(errorsOf(line, "policy", release).length).toBeGreaterThan(0);
  });

  const refusedService = [
    "@dispvm @default allow",
    "@default @default allow",
    "@anyvm @default allow,target=@dispvm:@tag:dvms",
    "@anyvm @default deny,target=work",
    "@anyvm @anyvm deny,user=user",
    "@anyvm @anyvm bogus",
    "@anyvm @anyvm",
    "@anyvm @anyvm allow extra",
    "@anyvm @default allow",
    "!include-dir include",
  ];
  test.each(refusedService)("refused in an !include-service file: %s", (line) => {
    expect(errorsOf(line, "service", release).length).toBeGreaterThan(0);
  });

  const accepted = [
    "my.Service +arg @anyvm @default allow target=@dispvm",
    "my.Service * @anyvm @anyvm ask default_target=@dispvm:default-dvm user=root autostart=no notify=yes",
    "my.Service + @tag:work @dispvm:@tag:dvms allow",
    "* * @anyvm @anyvm deny notify=no",
    "my.Service +a+b.c-d_e @type:AppVM @adminvm allow target=dom0",
    "my.Service * @anyvm @default ask target=work default_target=work",
    "   my.Service\t*\twork\tvault\tallow   ",
    "# a comment",
    "",
    "!include include/other",
    "!include-dir include",
    "!include-service my.Service +arg include/other",
    "!include-service * * include/other",
  ];
  test.each(accepted)("accepted: %s", (line) => {
    expect(errorsOf(line, "policy", release)).toEqual([]);
  });
});

test("any text: the parser never throws, and every diagnostic points inside the text (property)", async () => {
  const fc = (await import("fast-check")).default;
  const word = fc.oneof(
    fc.constantFrom("qubes.Gpg", "*", "+", "+a", "@anyvm", "@dispvm", "@dispvm:", "@dispvm:@tag:x", "@tag:", "@type:X", "@default", "dom0", "uuid:x", "allow", "deny", "ask"),
    fc.constantFrom("target=", "target=@anyvm", "notify=yes", "user=", "autostart=maybe", "default_target=dom0", "=", "#", "!include", "!include-dir", "!include-service", "!compat-4.0"),
    fc.string({ maxLength: 6 }),
  );
  const line = fc.array(word, { maxLength: 8 }).map((ws) => ws.join(" "));
  fc.assert(
    fc.property(fc.array(line, { maxLength: 10 }), fc.constantFrom(...RELEASE_IDS), fc.constantFrom("policy" as const, "service" as const), (lines, release, syntax) => {
      const text = lines.join("\n");
      const parsed = parsePolicyText(text, release, { file: "f", syntax });
      const count = text.split("\n").length;
      for (const d of parsed.diagnostics) {
        expect(d.location?.file).toBe("f");
        expect(d.location!.line).toBeGreaterThanOrEqual(1);
        expect(d.location!.line).toBeLessThanOrEqual(count);
      }
      // What reads is a statement of the text's lines, never more than there are.
      expect(parsed.statements.length).toBeLessThanOrEqual(count);
    }),
    { numRuns: 500 },
  );
});
