// The published schema file is exactly the schema the validator compiles (regenerate: vitest -u).
import { expect, test } from "vitest";
import { buildSchema } from "../../src/config/index.js";

test("schemas/qubes-iac.schema.json is the schema the validator uses", async () => {
  await expect(`${JSON.stringify(buildSchema(), null, 2)}\n`).toMatchFileSnapshot("../../schemas/qubes-iac.schema.json");
});
