// Drives the OpenMeter JavaScript SDK (@openmeter/sdk) with node: the same step protocol as
// sdk_common.py (JSON on stdin, JSON results on stdout). Copied next to its node_modules by
// the test, so `import '@openmeter/sdk'` resolves to the installed package.
import { OpenMeter } from '@openmeter/sdk'
import { OpenMeter as Portal } from '@openmeter/sdk/portal'

const text = (value) => (value instanceof Date ? value.toISOString() : value)

function rowsOf(data) {
  return data.map((row) => ({
    value: String(row.value),
    windowStart: text(row.windowStart),
    windowEnd: text(row.windowEnd),
    subject: row.subject ?? null,
    groupBy: row.groupBy ?? {},
  }))
}

async function attempt(call) {
  try {
    return { rows: rowsOf((await call()).data) }
  } catch (error) {
    if (error && error.status) return { error: { status: error.status, content_type: error.__raw ? 'application/problem+json' : null } }
    throw error
  }
}

class Js {
  constructor(url, token) {
    this.url = url
    this.client = new OpenMeter({ baseUrl: url, apiKey: token })
  }
  async ingest_one(event) { await this.client.events.ingest(event) }
  async ingest_many(events) { await this.client.events.ingest(events) }
  async meters() { return (await this.client.meters.list()).map((meter) => meter.slug) }
  async query(q, token) {
    if (q.csv) return { unsupported: true } // the JavaScript SDK has no CSV query
    const client = token ? new OpenMeter({ baseUrl: this.url, apiKey: token }) : this.client
    const params = {}
    if (q.from) params.from = new Date(q.from)
    if (q.to) params.to = new Date(q.to)
    for (const key of ['windowSize', 'windowTimeZone', 'subject', 'groupBy', 'filterGroupBy']) {
      if (q[key] !== undefined) params[key] = q[key]
    }
    if (q.post) {
      if (params.filterGroupBy) {
        params.filterGroupBy = Object.fromEntries(Object.entries(params.filterGroupBy).map(([k, v]) => [k, [v]]))
      }
      return attempt(() => client.meters.queryPost(q.meter, params))
    }
    return attempt(() => client.meters.query(q.meter, params))
  }
  async values(account) {
    return {
      v2: await this.client.customers.entitlements.value(account, 'credits'),
      v1: await this.client.customers.entitlementsV1.value(account, 'credits'),
      subject: await this.client.entitlementsV1.value(account, 'credits'),
      access: (await this.client.customers.getAccess(account)).entitlements.credits,
    }
  }
  async portal_create(subject) { return await this.client.portal.create({ subject }) }
  async portal_list() { return (await this.client.portal.list()).map((token) => token.id) }
  async portal_invalidate(id) { await this.client.portal.invalidate({ id }) }
  async portal_query(token, meter) {
    const portal = new Portal({ baseUrl: this.url, portalToken: token })
    return attempt(() => portal.query(meter, {}))
  }
}

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const spec = JSON.parse(Buffer.concat(chunks).toString())
const driver = new Js(spec.url, spec.token)
const results = []
for (const step of spec.steps) results.push(await driver[step.do](...(step.args ?? [])))
process.stdout.write(JSON.stringify(results, (_, value) => text(value)))
