// Helpers shared by the end-to-end scripts: failing with a clear message and
// reading the environment the pytest side sets.
import process from 'node:process'

export class FlowError extends Error {}

export function fail(message) {
  throw new FlowError(message)
}

export function check(condition, message) {
  if (!condition) fail(message)
}

export function env(name, { optional = false } = {}) {
  const value = process.env[name] ?? ''
  if (!value && !optional) fail(`environment variable ${name} is required`)
  return value
}
