import type { IncomingHttpHeaders } from 'node:http';

/** The token of `Authorization: Bearer <token>`; '' when the header or the token is missing. */
export function bearerToken(headers: IncomingHttpHeaders): string {
  const header = headers.authorization;
  if (!header) return '';
  const match = /^Bearer[ \t]*(.*)$/i.exec(header);
  return match ? match[1].trim() : '';
}
