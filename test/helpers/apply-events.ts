// The lines of `apply --json`, parsed and each checked against schemas/apply-events.schema.json
// (with the plan schema it refers to), so that every test that reads apply's events also keeps
// the published schema true to what apply writes.
import { Ajv } from "ajv";
import eventsSchema from "../../schemas/apply-events.schema.json" with { type: "json" };
import planSchema from "../../schemas/plan.schema.json" with { type: "json" };

export type ApplyEvent = Record<string, unknown> & { type: string };

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
ajv.addSchema(planSchema);
const validate = ajv.compile(eventsSchema);

/** Parses `apply --json` output; throws, naming the line and what is wrong, on a line the schema refuses. */
export function applyEvents(stdout: string): ApplyEvent[] {
  return stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((line, i) => {
      const event = JSON.parse(line) as ApplyEvent;
      if (!validate(event)) {
        const why = (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? ""} ${JSON.stringify(e.params)}`).join("; ");
        throw new Error(`apply --json line ${i + 1} (${String(event.type)}) does not match schemas/apply-events.schema.json: ${why}\n${line.slice(0, 500)}`);
      }
      return event;
    });
}
