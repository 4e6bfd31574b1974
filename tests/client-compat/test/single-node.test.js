// One server node on a fresh PostgreSQL database.
import { defineCompatSuite } from "../lib/scenarios.js";

defineCompatSuite({ label: "single", nodes: 1 });
