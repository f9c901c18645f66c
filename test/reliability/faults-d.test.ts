// The fault matrix, part D (see _matrix.ts): the call held inside qubesd past the client's
// timeout and made after apply re-read it — reported as unknown, never as "did not happen".
import { describeMatrix } from "./_matrix.js";

describeMatrix(["delay-before"]);
