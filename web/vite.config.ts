import { defineConfig } from "vite";

// `npm run dev` serves the page with hot reload and forwards the RPC paths to
// a running `minizon dev` (MINIZON_URL, default http://127.0.0.1:8080), so
// the page stays same-origin as it is when minizon serves it.
const target = process.env.MINIZON_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // The built files are committed and embedded in the Go binary: no
    // source maps, and a stable layout so rebuilds give identical files.
    sourcemap: false,
    assetsDir: "assets",
  },
  server: {
    host: "127.0.0.1",
    proxy: {
      "/minizon.": target,
      "/route256.": target,
    },
  },
});
