// ESLint flat config for the whole workspace (the dashboard, packages/client
// and examples/react): @eslint/js, typescript-eslint (type-aware, each file
// with its nearest tsconfig.json), eslint-plugin-vue recommended rules and
// React's hooks rules. Formatting is Prettier's (`npm run format:check`):
// eslint-config-prettier, last, turns off the rules that would fight it.
import js from '@eslint/js'
import prettier from 'eslint-config-prettier/flat'
import reactHooks from 'eslint-plugin-react-hooks'
import vue from 'eslint-plugin-vue'
import { defineConfig } from 'eslint/config'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default defineConfig(
  // The client's generated/ is ts-rs output, written by `cargo test -p pglive-schema`.
  { ignores: ['**/dist/', '**/node_modules/', 'test-results/', 'packages/client/src/generated/'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  vue.configs['flat/recommended'],
  {
    files: ['**/*.ts', '**/*.tsx', '**/*.vue'],
    languageOptions: {
      globals: globals.browser,
      parserOptions: {
        parser: tseslint.parser,
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
        extraFileExtensions: ['.vue'],
      },
    },
    rules: {
      // vue-tsc reports undefined names, with the real types.
      'no-undef': 'off',
      // A leading underscore marks a deliberately unused parameter.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // React code: the hooks rules (call order, effect dependencies).
    files: ['packages/client/src/react*.ts', 'examples/react/src/**/*.{ts,tsx}'],
    plugins: { 'react-hooks': reactHooks },
    rules: {
      'react-hooks/rules-of-hooks': 'error',
      'react-hooks/exhaustive-deps': 'error',
    },
  },
  {
    // The TypeScript service behind ESLint cannot type `.vue` imports in `.ts`
    // files (vue-tsc can, and checks this one).
    files: ['src/main.ts'],
    rules: { '@typescript-eslint/no-unsafe-argument': 'off' },
  },
  {
    files: ['**/*.test.ts'],
    rules: {
      // expect.any(...) and friends are typed `any`.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      // Test doubles are async without awaiting, to return promises.
      '@typescript-eslint/require-await': 'off',
      // Tests define small components inline.
      'vue/one-component-per-file': 'off',
    },
  },
  {
    // Node scripts and this config: plain JavaScript, outside tsconfig.json.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
  {
    // The e2e runner also sends functions to the page (page.evaluate).
    files: ['e2e/**'],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
  prettier,
)
