// Vite builds the app into dist/ (served by the gateway: /assets/* get an
// immutable cache header, index.html is revalidated). JSX goes through
// esbuild's automatic runtime with Preact, so no React plugin is needed.
// `npm run dev` proxies the API and WebSocket to a running gateway
// (API_URL, default http://127.0.0.1:8080).
import { defineConfig } from 'vite';

const api = process.env.API_URL || 'http://127.0.0.1:8080';

export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    target: 'es2020',
    outDir: 'dist',
    assetsDir: 'assets',
    sourcemap: false,
    reportCompressedSize: false,
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: {
      '/api': { target: api, ws: true, changeOrigin: true },
      '/media': { target: api, changeOrigin: true },
    },
  },
});
