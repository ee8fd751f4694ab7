/**
 * True when every string (and object key) inside `value` can be stored by Postgres: no NUL
 * characters (text and jsonb refuse them) and no lone UTF-16 surrogates (jsonb refuses their
 * escapes). Values come from JSON.parse, so there are no cycles and depth is already bounded.
 */
export function isStorableText(value: unknown): boolean {
  if (typeof value === 'string') return value.isWellFormed() && !value.includes('\u0000');
  if (Array.isArray(value)) return value.every(isStorableText);
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).every(([key, inner]) => isStorableText(key) && isStorableText(inner));
  }
  return true;
}
