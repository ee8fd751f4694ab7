import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';

/** Serves the OpenAPI 3 document at /openapi.json and a docs page at /docs (no auth: it holds no secrets). */
export function setUpOpenApi(app: INestApplication): void {
  const config = new DocumentBuilder()
    .setTitle('Drawbridge Gateway')
    .setDescription('OpenAI-compatible LLM gateway: public /v1 API (db- keys), admin API (admin token), health and metrics.')
    .setVersion('1')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'A db- API key' }, 'api-key')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'The admin token' }, 'admin')
    .build();
  const document = SwaggerModule.createDocument(app, config);
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'openapi.json', raw: ['json'] });
}
