import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { freePorts } from './postgres';

/**
 * A single-node Apache Kafka broker (KRaft, broker + controller in one JVM, loopback only) for
 * tests. No broker ships in npm or Debian and these machines have no Docker, so the harness runs
 * the jars scripts/bootstrap.sh fetched from Maven Central.
 *
 * Topics are not auto-created (`auto.create.topics.enable=false`): production brokers are
 * provisioned with explicit topics (partitions, retention, min.insync.replicas), so the code under
 * test must create or declare its topics the same way; a typo in a topic name then fails loudly
 * instead of silently creating a second topic.
 */
export interface TestKafka {
  /** host:port of the broker's client listener. */
  readonly brokers: string[];
  /** The broker's folder (config, data, server.log). */
  readonly dir: string;
  /** Stops the broker and removes its folder. */
  stop(): Promise<void>;
  /** Stops the broker and starts it again on the same data and port (for broker-outage tests). */
  restart(): Promise<void>;
}

export interface StartKafkaOptions {
  /** Parent folder for the broker's temp folder; defaults to the OS temp folder. */
  dir?: string;
  /** Upper bound for the broker to become ready. */
  startTimeoutMs?: number;
  /** Default partition count for topics created without one. */
  partitions?: number;
}

/** Written into the broker folder so a later run can stop a broker a crashed run left behind. */
export const KAFKA_PID_FILE = 'harness.pid';

export async function startKafka(options: StartKafkaOptions = {}): Promise<TestKafka> {
  const libs = findKafkaLibs();
  const parent = options.dir ?? tmpdir();
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, 'kafka-'));
  const startTimeoutMs = options.startTimeoutMs ?? 90_000;
  try {
    const [clientPort, controllerPort] = (await freePorts(2)) as [number, number];
    const configFile = join(dir, 'server.properties');
    writeFileSync(configFile, brokerConfig({ dir, clientPort, controllerPort, partitions: options.partitions ?? 1 }));
    writeFileSync(join(dir, 'log4j2.properties'), LOG4J2_CONFIG);

    // The cluster id is a base64url UUID; generating it here saves a JVM start (StorageTool random-uuid).
    const clusterId = randomBytes(16).toString('base64url');
    // Static quorum (controller.quorum.voters) needs no --standalone / --initial-controllers.
    // `--cluster-id=<id>`, not `-t <id>`: one id in 64 starts with '-' (base64url), which the
    // tool's argument parser takes for an option ("expected one argument") as a separate word.
    await runToCompletion(javaArgs(libs, dir, ['kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', configFile]), join(dir, 'format.log'));

    let broker = await launch(libs, dir, configFile, clientPort, startTimeoutMs);
    let stopped = false;
    return {
      brokers: [`127.0.0.1:${clientPort}`],
      dir,
      async stop() {
        if (stopped) return;
        stopped = true;
        try {
          await terminate(broker);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
      async restart() {
        if (stopped) throw new Error('kafka harness: restart after stop');
        await terminate(broker);
        broker = await launch(libs, dir, configFile, clientPort, startTimeoutMs);
      },
    };
  } catch (err) {
    killFromPidFile(dir);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The broker jars: $PKI_KAFKA_LIBS or <repo>/var/tools/kafka/libs. */
export function findKafkaLibs(): string {
  const explicit = process.env.PKI_KAFKA_LIBS;
  const libs = explicit ?? join(findRepoRoot(), 'var', 'tools', 'kafka', 'libs');
  const present = existsSync(libs) && readdirSync(libs).some((f) => /^kafka_2\.\d+-.*\.jar$/.test(f));
  if (!present) {
    throw new Error(`kafka harness: broker jars not found at ${libs}; run scripts/bootstrap.sh --with-kafka`);
  }
  return libs;
}

/** The repository root: the nearest folder upwards holding pnpm-workspace.yaml. */
export function findRepoRoot(from: string = __dirname): string {
  let current = resolve(from);
  for (;;) {
    if (existsSync(join(current, 'pnpm-workspace.yaml'))) return current;
    const parent = dirname(current);
    if (parent === current) throw new Error(`kafka harness: no pnpm-workspace.yaml above ${from}`);
    current = parent;
  }
}

/**
 * Kills a broker or server a crashed run left behind, from the pid file in its folder. Only a
 * process whose command line names that folder: a stale pid may since belong to anything else.
 */
export function killFromPidFile(dir: string, pidFile: string = KAFKA_PID_FILE): void {
  try {
    const pid = Number(readFileSync(join(dir, pidFile), 'utf8').split('\n')[0]!.trim());
    if (!Number.isInteger(pid) || pid <= 0) return;
    const commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    if (commandLine.includes(dir)) process.kill(pid, 'SIGKILL');
  } catch {
    // no pid file, or the process is already gone
  }
}

interface Broker {
  process: ChildProcess;
  exited: Promise<number | null>;
}

function brokerConfig(p: { dir: string; clientPort: number; controllerPort: number; partitions: number }): string {
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${p.controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${p.clientPort},CONTROLLER://127.0.0.1:${p.controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${p.clientPort}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    `log.dirs=${join(p.dir, 'data')}`,
    `num.partitions=${p.partitions}`,
    'auto.create.topics.enable=false',
    // One node: every internal topic has one replica, and few partitions so the first consumer
    // group or idempotent producer does not wait for 50 partitions to be created.
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    // A consumer group forms at once instead of after the default 3 s grace for more members.
    'group.initial.rebalance.delay.ms=0',
    'log.flush.interval.messages=9223372036854775807',
    'num.network.threads=2',
    'num.io.threads=2',
    'num.recovery.threads.per.data.dir=1',
    '',
  ].join('\n');
}

const LOG4J2_CONFIG = [
  'status = warn',
  'appender.console.type = Console',
  'appender.console.name = STDOUT',
  'appender.console.layout.type = PatternLayout',
  'appender.console.layout.pattern = [%d] %p %m (%c)%n',
  'rootLogger.level = WARN',
  'rootLogger.appenderRef.stdout.ref = STDOUT',
  // The readiness line ("Kafka Server started") is an INFO of this logger.
  'logger.raftserver.name = kafka.server.KafkaRaftServer',
  'logger.raftserver.level = INFO',
  '',
].join('\n');

function javaArgs(libs: string, dir: string, main: string[]): string[] {
  return [
    '-Xmx512m',
    '-Xms128m',
    '-XX:+UseSerialGC',
    // C1 only: a test broker lives for minutes, so a faster start beats peak throughput.
    '-XX:TieredStopAtLevel=1',
    '-Djava.awt.headless=true',
    // Whichever slf4j binding the jars bring: log4j2 reads this file, slf4j-simple these properties.
    `-Dlog4j2.configurationFile=${join(dir, 'log4j2.properties')}`,
    '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
    '-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info',
    '-Dorg.slf4j.simpleLogger.showDateTime=true',
    `-Dkafka.logs.dir=${dir}`,
    '-cp',
    `${libs}/*`,
    ...main,
  ];
}

async function runToCompletion(args: string[], logFile: string): Promise<void> {
  const out = openSync(logFile, 'a');
  try {
    const child = spawn('java', args, { stdio: ['ignore', out, out] });
    const code = await new Promise<number | null>((resolveExit, reject) => {
      child.on('error', reject);
      child.on('exit', resolveExit);
    });
    if (code !== 0) throw new Error(`kafka harness: ${args.slice(-5).join(' ')} exited with ${code}\n${tail(logFile)}`);
  } finally {
    closeSync(out);
  }
}

async function launch(libs: string, dir: string, configFile: string, clientPort: number, timeoutMs: number): Promise<Broker> {
  const logFile = join(dir, 'server.log');
  const logStart = existsSync(logFile) ? readFileSync(logFile).length : 0;
  const out = openSync(logFile, 'a');
  const child = spawn('java', javaArgs(libs, dir, ['kafka.Kafka', configFile]), { stdio: ['ignore', out, out] });
  closeSync(out);
  const exited = new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));
  child.on('error', () => undefined);
  if (child.pid !== undefined) writeFileSync(join(dir, KAFKA_PID_FILE), `${child.pid}\n`);
  const broker = { process: child, exited };

  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  for (;;) {
    if (exitCode !== undefined) {
      throw new Error(`kafka harness: broker exited with ${exitCode} during start\n${tail(logFile, logStart)}`);
    }
    // A log line is no readiness signal (the jars may bring no working slf4j binding, and then
    // the broker logs nothing); the broker itself is: it processes client requests only after
    // startup, and lists itself in Metadata only once unfenced, i.e. able to host partitions.
    if ((await aliveBrokers(clientPort)) > 0) return broker;
    if (Date.now() > deadline) {
      await terminate(broker);
      throw new Error(`kafka harness: broker not ready after ${timeoutMs} ms\n${tail(logFile, logStart)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function terminate(broker: Broker): Promise<void> {
  if (broker.process.exitCode !== null || broker.process.signalCode !== null) return;
  broker.process.kill('SIGTERM');
  // A single node shuts down in a second or two; a hung JVM is not worth waiting for.
  const timer = setTimeout(() => broker.process.kill('SIGKILL'), 15_000);
  try {
    await broker.exited;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Sends one Metadata v4 request (the oldest version Kafka 4 still serves, KIP-896) for no topics
 * and returns how many live brokers the answer lists; 0 when the broker does not answer yet.
 * Wire format: kafka.apache.org/protocol (request header v1, non-flexible Metadata v4).
 */
function aliveBrokers(port: number): Promise<number> {
  const clientId = Buffer.from('pki-kafka-harness');
  const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4 + 1);
  let at = 0;
  at = body.writeInt16BE(3, at); // api key: Metadata
  at = body.writeInt16BE(4, at); // api version
  at = body.writeInt32BE(1, at); // correlation id
  at = body.writeInt16BE(clientId.length, at);
  at += clientId.copy(body, at);
  at = body.writeInt32BE(0, at); // topics: empty array (none, as opposed to null = all)
  body.writeInt8(0, at); // allow_auto_topic_creation
  const frame = Buffer.concat([Buffer.alloc(4), body]);
  frame.writeInt32BE(body.length, 0);

  return new Promise((resolveCount) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = Buffer.alloc(0);
    const finish = (count: number) => {
      socket.destroy();
      resolveCount(count);
    };
    socket.setTimeout(2000);
    socket.once('connect', () => socket.write(frame));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      // size(4) correlation id(4) throttle_time_ms(4) brokers array length(4)
      if (received.length >= 16) finish(Math.max(0, received.readInt32BE(12)));
    });
    socket.once('error', () => finish(0));
    socket.once('timeout', () => finish(0));
    socket.once('close', () => finish(0));
  });
}

/** The last lines the broker wrote since `from` (a byte offset: the start of this launch). */
function tail(file: string, from = 0, lines = 40): string {
  try {
    return readFileSync(file).subarray(from).toString('utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no broker log)';
  }
}
