// The fault matrix, part C (see _matrix.ts): the call ran but its reply was cut short, or held
// back past the client's timeout — re-reading finds it done and the apply completes.
import { describeMatrix } from "./_matrix.js";

describeMatrix(["truncate", "delay"]);
