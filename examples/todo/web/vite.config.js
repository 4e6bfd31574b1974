import { defineConfig } from "vite";

// `npm run dev` proxies the sync routes to a running example server
// (`cargo run -p todo-example`, default 127.0.0.1:3000; override with SYNC_SERVER).
const server = process.env.SYNC_SERVER ?? "http://127.0.0.1:3000";

export default defineConfig({
  build: { target: "es2022" },
  server: {
    proxy: {
      "/sync": { target: server, ws: true },
    },
  },
});
