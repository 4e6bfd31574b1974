// Two server nodes on one database, fanning out through Redis: client A talks
// to node 1, every other client to node 2.
import { defineCompatSuite } from "../lib/scenarios.js";

defineCompatSuite({ label: "two-node", nodes: 2 });
