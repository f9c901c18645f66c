// The fault matrix (see _matrix.ts) on the laptop example (examples/laptop.yaml, owner laptop)
// from the simulator's laptop fixture: a cloned template and a standalone cloned from it
// (CloneFrom/CloneTo), PCI assignments (Assign on R4.3+, persistent Attach on R4.2), a new HVM, an
// AppVM with a firewall, volume sizes — each of its mutating calls and each of the apply lock's
// writes faulted in turn, with the same checks as faults-a..d.
//
// Kinds: `exception` and `close-before` (the call not made), `close-after` (made, its reply lost:
// what re-reading must settle for a CloneTo or an Assign) and `delay` (made, its reply held past
// the client's timeout: a lost CloneFrom token is then unknown, not "not done"). The others
// (garbage, truncate: the same re-reading as close-after; delay-before) are left to the
// workstation matrix to keep this file under ~90 s per release (measured on the shared 2-core
// machine: main 53 s, R4.3 62 s, R4.2 59 s; up to twice that with other test files beside it).
import { describeMatrix, LAPTOP } from "./_matrix.js";

describeMatrix(["exception", "close-before", "close-after", "delay"], LAPTOP);
