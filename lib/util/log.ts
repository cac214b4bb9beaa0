/**
 * Structured logs with pino: one JSON line per event on stderr ({"level":"info","time":ISO,
 * "service":..., fields..., "msg":...}), which log shippers and our test helpers parse. The Logger
 * interface below is what the code uses, so call sites stay `log.info(msg, fields)`. SPI_LOG_LEVEL
 * sets the level (debug, info, warn, error; default info).
 */
import pino from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error'];

function levelFromEnv(): LogLevel {
  const env = (process.env.SPI_LOG_LEVEL ?? 'info').toLowerCase() as LogLevel;
  return LEVELS.includes(env) ? env : 'info';
}

/**
 * Errors do not serialise with JSON.stringify: pino's serializer handles `err`; an Error under any
 * other field name is reduced here to what a reader needs.
 */
function plain(fields: LogFields | undefined): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields ?? {})) {
    if (v instanceof Error && k !== 'err') {
      const kind = (v as { kind?: unknown }).kind;
      out[k] = { name: v.name, message: v.message, ...(kind ? { kind } : {}), stack: v.stack };
    } else out[k] = v;
  }
  return out;
}

// One synchronous stderr destination per process: lines are written before a crash or exit.
let destination: pino.DestinationStream | undefined;

function wrap(p: pino.Logger): Logger {
  return {
    debug: (msg, fields) => p.debug(plain(fields), msg),
    info: (msg, fields) => p.info(plain(fields), msg),
    warn: (msg, fields) => p.warn(plain(fields), msg),
    error: (msg, fields) => p.error(plain(fields), msg),
    child: (fields) => wrap(p.child(plain(fields))),
  };
}

export function createLogger(service: string, base: LogFields = {}): Logger {
  destination ??= pino.destination({ dest: 2, sync: true });
  const root = pino(
    {
      level: levelFromEnv(),
      base: { service, ...plain(base) },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return wrap(root);
}
