import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// Built into dist/ and served by Django (whitenoise) under /static/; index.html is returned by Django
// for every app route (config/views.py), so asset URLs are absolute under /static/.
export default defineConfig({
  base: "/static/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 8000,
  },
  worker: { format: "es" },
  optimizeDeps: {
    exclude: ["@cornerstonejs/dicom-image-loader"],
    include: ["dicom-parser"],
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8000",
      "/dicomweb": "http://127.0.0.1:8000",
      "/accounts": "http://127.0.0.1:8000",
    },
  },
  test: {
    environment: "node",
    include: ["tests/**/*.test.ts"],
  },
});
