import http from 'node:http';
import { isMainThread, Worker, workerData } from 'node:worker_threads';

/* eslint-disable no-console -- prints its port for the parent benchmark */

/**
 * The static-body ceiling of the OCSP benchmark: a plain Node HTTP server answering every request
 * with the same 1.5 KB body, with as many threads on one port (SO_REUSEPORT) as the responder
 * under test. Nothing is parsed, looked up or assembled: what is left is Node's HTTP itself.
 * Arguments: <port> <threads>.
 */
const BODY = Buffer.alloc(1_500, 0x30);

function serve(port: number): void {
  http
    .createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/ocsp-response', 'content-length': BODY.length, 'cache-control': 'max-age=3600, public, no-transform, must-revalidate' });
      res.end(BODY);
    })
    .listen({ host: '127.0.0.1', port, reusePort: true }, () => {
      if (isMainThread) console.log('listening');
    });
}

if (isMainThread) {
  const port = Number(process.argv[2]);
  const threads = Number(process.argv[3] ?? 1);
  for (let i = 1; i < threads; i++) new Worker(__filename, { workerData: { port } });
  serve(port);
} else {
  serve((workerData as { port: number }).port);
}
