// Lint of the extension's TypeScript (scripts/check_labextension.sh): typescript-eslint's
// recommended rules, type-aware where a rule needs the types (floating promises, misused promises).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['lib/**', 'node_modules/**', 'eslint.config.mjs'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/explicit-module-boundary-types': 'off',
      eqeqeq: 'error',
      curly: 'error'
    }
  }
);
