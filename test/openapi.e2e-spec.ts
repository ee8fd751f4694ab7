import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compileErrors, validate } from '@readme/openapi-parser';
import { TestGateway, startTestGateway } from './support/test-gateway';

interface Operation {
  security?: Array<Record<string, string[]>>;
}

interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Operation> | undefined>;
  security?: Array<Record<string, string[]>>;
  components?: { securitySchemes?: Record<string, { type?: string; scheme?: string } | undefined> };
}

describe('OpenAPI document and docs page', () => {
  let gw: TestGateway;
  let document: OpenApiDocument;

  before(async () => {
    gw = await startTestGateway();
    const res = await fetch(`${gw.url}/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    document = (await res.json()) as OpenApiDocument;
  });
  after(() => gw?.close());

  it('/openapi.json is a valid OpenAPI 3 document', async () => {
    assert.match(document.openapi, /^3\.\d+\.\d+$/);
    // The validator dereferences in place: give it a copy.
    const result = await validate(structuredClone(document) as Parameters<typeof validate>[0]);
    assert.ok(result.valid, result.valid ? '' : compileErrors(result));
  });

  it('describes the /v1 and /admin paths with their bearer schemes', () => {
    const expected: Record<string, string[]> = {
      '/v1/chat/completions': ['post'],
      '/v1/models': ['get'],
      '/v1/models/{id}': ['get'],
      '/admin/keys': ['post', 'get'],
      '/admin/keys/{id}': ['get', 'patch', 'delete'],
      '/admin/accounts': ['get'],
      '/admin/usage': ['get'],
      '/admin/metrics': ['get'],
    };
    for (const [path, methods] of Object.entries(expected)) {
      const item = document.paths[path];
      assert.ok(item, `${path} is not described`);
      for (const method of methods) {
        const operation: Operation | undefined = item[method];
        assert.ok(operation, `${method.toUpperCase()} ${path} is not described`);
        const declared: string[] = (operation.security ?? document.security ?? []).flatMap((s) => Object.keys(s));
        assert.deepEqual(declared, [path.startsWith('/admin') ? 'admin' : 'api-key'], `security of ${method.toUpperCase()} ${path}`);
      }
    }
    const schemes = document.components?.securitySchemes;
    for (const name of ['api-key', 'admin']) {
      assert.equal(schemes?.[name]?.type, 'http');
      assert.equal(schemes?.[name]?.scheme, 'bearer');
    }
    assert.ok(!JSON.stringify(document).includes(gw.adminToken), 'the admin token is in the document');
  });

  it('/docs serves an HTML page whose assets load', async () => {
    const res = await fetch(`${gw.url}/docs`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const html = await res.text();
    assert.match(html, /<html[\s>]/i);
    const assets = [...html.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)].map((m) => new URL(m[1]!, `${gw.url}/docs`).href);
    assert.ok(assets.length > 0, 'the page references no script or stylesheet');
    for (const asset of assets) {
      const loaded = await fetch(asset);
      assert.equal(loaded.status, 200, asset);
      await loaded.body?.cancel();
    }
  });
});
