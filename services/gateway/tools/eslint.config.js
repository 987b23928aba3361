// The lint of the gateway's page and of its browser test. It lives beside assets/, not in it:
// that folder is served and built into the binary as it is, so it holds only the page's files.

import js from '@eslint/js';
import globals from 'globals';

const rules = {
  ...js.configs.recommended.rules,
  eqeqeq: ['error', 'always', { null: 'ignore' }],
  'no-shadow': 'error',
  'no-var': 'error',
  'prefer-const': 'error',
};

export default [
  // Paths are relative to services/gateway, where `npm run lint` runs eslint.
  { ignores: ['**/node_modules/'] },
  {
    files: ['assets/**/*.js'],
    languageOptions: { ecmaVersion: 'latest', sourceType: 'module', globals: globals.browser },
    rules: {
      ...rules,
      'no-console': 'error',
      // The modules share state only through what they export: a browser global such as
      // `name` or `event` used by mistake is an error, not the window's property.
      'no-restricted-globals': ['error', 'name', 'event', 'status', 'length', 'close', 'open', 'top', 'parent', 'self'],
    },
  },
  {
    // The browser test runs in Node, and the callbacks it hands to page.evaluate in the page.
    files: ['tests/browser/**/*.mjs', 'tools/**/*.js'],
    languageOptions: { ecmaVersion: 'latest', sourceType: 'module', globals: { ...globals.node, ...globals.browser } },
    rules,
  },
];
