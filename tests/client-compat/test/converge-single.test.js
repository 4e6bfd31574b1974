// The convergence property on one server node.
import { defineConvergenceSuite } from "../lib/convergence.js";

defineConvergenceSuite({ label: "single", nodes: 1 });
