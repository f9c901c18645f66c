// The fault matrix, part B (see _matrix.ts): the call ran but its reply was lost or garbled —
// re-reading finds it done and the apply completes.
import { describeMatrix } from "./_matrix.js";

describeMatrix(["close-after", "garbage"]);
