import { fileURLToPath, URL } from 'node:url'
import { defineConfig } from 'vitest/config'

const src = (file: string) => fileURLToPath(new URL(`./src/${file}`, import.meta.url))

// The package's JavaScript: one ES module per entry point (`.`, `./vue`,
// `./react`) with what they share in a common chunk, so that the Vue and
// React bindings use the same LiveClient class as the core. Frameworks stay
// outside, as peer dependencies. Type declarations come from `tsc`
// (tsconfig.build.json).
export default defineConfig({
  build: {
    target: 'es2022',
    sourcemap: true,
    emptyOutDir: true,
    lib: {
      entry: { index: src('index.ts'), vue: src('vue.ts'), react: src('react.ts') },
      formats: ['es'],
    },
    rollupOptions: {
      external: [/^vue(\/.*)?$/, /^@tanstack\//, /^react(\/.*)?$/, /^react-dom(\/.*)?$/],
    },
  },
  test: {
    name: 'client',
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
})
