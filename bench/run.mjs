// `npm run bench` entry: loads the TypeScript benchmark (bench/main.ts) through tsx, a dev
// dependency, so the benchmark imports the sources it measures in place.
import { register } from "tsx/esm/api";

register();
await import("./main.ts");
