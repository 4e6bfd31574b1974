// The convergence property on two server nodes fanning out through Redis:
// clients alternate between node 1 and node 2.
import { defineConvergenceSuite } from "../lib/convergence.js";

defineConvergenceSuite({ label: "two-node", nodes: 2 });
