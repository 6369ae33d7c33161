// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'eslint.config.js', 'scripts/**', '.scratch/**'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // Our Dispatcher subclasses repeat undici's overloads of close()/destroy() one for one.
      '@typescript-eslint/unified-signatures': 'off',
    },
  },
  {
    // The library must use the fetch of the undici it depends on: Node's bundled fetch may come
    // from another undici major and reject our dispatchers (see DEVELOPERS.md, "Known traps").
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', { name: 'fetch', message: "Import fetch from 'undici'." }],
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/testing/**', '../testing/*'], message: 'src/ must not import the test kit.' }] }],
    },
  },
  {
    files: ['src/testing/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'docs/examples/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
);
