import { Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { logsRequestLines } from '../common/logger.options';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { CompletionsRoute } from './completions.route';

const PATH = '/v1/chat/completions';

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Hands `POST /v1/chat/completions` to CompletionsRoute straight from node:http, ahead of Express
 * and Nest's router. The framework's routing and per-request pipeline were more than half of the
 * gateway's CPU per completion (bench/RESULTS.md); everything else still goes through Express,
 * and so do completions when request lines are logged (debug, trace), since pino-http is an
 * Express middleware. The Nest route of CompletionsController stays: it documents the endpoint
 * and serves the spellings this exact match leaves out (a trailing slash, other letter cases).
 */
@Injectable()
export class CompletionsFastLane implements OnApplicationBootstrap {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly route: CompletionsRoute,
  ) {}

  onApplicationBootstrap(): void {
    if (logsRequestLines(this.config.log_level)) return;
    const server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    const listeners = server?.listeners('request') ?? [];
    if (!server || listeners.length !== 1) return; // not the one Express app this expects
    const framework = listeners[0] as RequestListener;
    server.removeListener('request', framework);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.method === 'POST' && isCompletionsPath(req.url)) void this.route.handle(req, res);
      else framework(req, res);
    });
  }
}

/** The exact path, with or without a query string. */
function isCompletionsPath(url: string | undefined): boolean {
  return url !== undefined && url.startsWith(PATH) && (url.length === PATH.length || url.charCodeAt(PATH.length) === 63 /* ? */);
}
