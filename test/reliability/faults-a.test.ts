// The fault matrix, part A (see _matrix.ts): a Qubes exception and the connection closed before
// the call ran — the faulted step fails, exactly its dependents are skipped.
import { describeMatrix } from "./_matrix.js";

describeMatrix(["exception", "close-before"]);
