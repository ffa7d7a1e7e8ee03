// node-opcua MES on a running `linecheck demo`: subscribes to the OPC 40100 ResultReadyEvent on
// the Server object, asks GetResultById for every result it is told of, and stops once it has
// `parts` events (and their answers). With `halt`, once it has them it halts the station
// (Halt), waits for `haltedParts` fail-safe "halted" events, then Reset and StartContinuous,
// and waits for as many decided parts again before it stops.
//
// Run by tests/opcua/test_node_mv_demo.py:  node mv_demo_client.mjs '<json options>'
// Protocol on stdout: "SUBSCRIBED", then one line "RESULT <json>". Diagnostics on stderr.
import {
    AttributeIds,
    ClientMonitoredItem,
    DataType,
    TimestampsToReturn,
    constructEventFilter,
    makeBrowsePath,
    resolveNodeId,
} from "node-opcua-client";
import { makeClient, options, userSession } from "./connection.mjs";

const opt = options();
const MV_URI = "http://opcfoundation.org/UA/MachineVision";
const LC_URI = "urn:linecheck";
const FIELDS = ["EventType", "ResultId", "PartId", "ResultState", "ResultContent"];
const log = (...a) => console.error("[mv_demo_client]", ...a);
const idOf = (v) => (v && typeof v === "object" && "id" in v ? v.id : v ?? null);
const content = (v) => JSON.parse(Array.isArray(v) ? (v[0]?.value ?? v[0]) : v);

async function main() {
    const client = await makeClient(opt, "linecheck-test-mv-demo", 120000);
    await client.connect(opt.endpoint);
    const session = await userSession(client, opt.user, opt.password);
    const out = { events: [], byId: {} };
    try {
        const nsArray = (await session.read({ nodeId: "ns=0;i=2255", attributeId: AttributeIds.Value })).value.value;
        const mv = nsArray.indexOf(MV_URI);
        const lc = nsArray.indexOf(LC_URI);
        const path = `/Objects/${lc}:VisionSystems/${lc}:${opt.stationId}/${mv}:ResultManagement`;
        const r = await session.translateBrowsePath(makeBrowsePath("RootFolder", path));
        if (r.statusCode.isNotGood()) throw new Error(`${path}: ${r.statusCode.name}`);
        const resultManagement = r.targets[0].targetId;
        const m = await session.translateBrowsePath(makeBrowsePath(resultManagement, `/${mv}:GetResultById`));
        const getById = m.targets[0].targetId;
        const resultIdType = resolveNodeId(`ns=${mv};i=3021`);

        const sub = await session.createSubscription2({
            requestedPublishingInterval: 100, requestedLifetimeCount: 6000, requestedMaxKeepAliveCount: 20,
            maxNotificationsPerPublish: 0, publishingEnabled: true,
        });
        const item = ClientMonitoredItem.create(
            sub, { nodeId: "ns=0;i=2253", attributeId: AttributeIds.EventNotifier },
            { samplingInterval: 0, queueSize: 100000,
              filter: constructEventFilter(FIELDS, [resolveNodeId(`ns=${mv};i=1024`)]) },
            TimestampsToReturn.Neither,
        );
        const ids = [];
        let waiting = null; // { test, resolve }: resolved by the first event list that passes test
        const until = (test) => new Promise((resolve) => {
            if (test(out.events)) resolve(); else waiting = { test, resolve };
        });
        item.on("changed", (fields) => {
            const [type, resultId, partId, state, body] = fields.map((f) => f.value);
            if (String(type) !== `ns=${mv};i=1024`) return;
            const c = content(body);
            out.events.push({ resultId: idOf(resultId), partId: idOf(partId), state, verdict: c.verdict, reason: c.reason });
            ids.push(idOf(resultId));
            if (waiting && waiting.test(out.events)) { const w = waiting; waiting = null; w.resolve(); }
        });
        await new Promise((resolve) => item.once("initialized", resolve));
        console.log("SUBSCRIBED");
        // GetResultById for each event as it comes (the server is answering a live station)
        let next = 0;
        let stopped = false;
        const lookups = (async () => {
            for (;;) {
                if (next >= ids.length) {
                    if (stopped) return;
                    await new Promise((res) => setTimeout(res, 20));
                    continue;
                }
                const id = ids[next++];
                const arg = await session.constructExtensionObject(resultIdType, { id });
                const res = await session.call({
                    objectId: resultManagement, methodId: getById,
                    inputArguments: [{ dataType: DataType.ExtensionObject, value: arg }, { dataType: DataType.Int32, value: 5000 }],
                });
                const [, result, error] = (res.outputArguments ?? []).map((v) => v.value);
                // an unknown result (error != 0) comes with an empty ResultDataType: no content
                const body = error === 0 && result ? result.resultContent : null;
                out.byId[id] = { status: res.statusCode.name, error, verdict: body?.length ? content(body).verdict : null };
            }
        })();
        await until((evs) => evs.length >= opt.parts);
        if (opt.halt) {
            const system = (await session.translateBrowsePath(
                makeBrowsePath("RootFolder", `/Objects/${lc}:VisionSystems/${lc}:${opt.stationId}`))).targets[0].targetId;
            const at = async (p) => (await session.translateBrowsePath(makeBrowsePath(system, p))).targets[0].targetId;
            const vsm = await at(`/${mv}:VisionStateMachine`);
            const auto = await at(`/${mv}:VisionStateMachine/${mv}:AutomaticModeStateMachine`);
            const call = async (objectId, name, inputArguments) => {
                const r = await session.call({ objectId, methodId: await at(name), inputArguments });
                return { status: r.statusCode.name, outputs: (r.outputArguments ?? []).map((v) => v.value) };
            };
            const cause = [{ dataType: DataType.Int32, value: 0 }, { dataType: DataType.String, value: "mv_demo_client" }];
            const ext = async (type, id) => ({
                dataType: DataType.ExtensionObject, value: await session.constructExtensionObject(resolveNodeId(`ns=${mv};i=${type}`), { id }),
            });
            const since = (mark, reason) => (evs) => evs.slice(mark).filter((e) => e.reason === reason).length >= opt.haltedParts;
            out.halt = await call(vsm, `/${mv}:VisionStateMachine/${mv}:Halt`, cause);
            await until(since(out.events.length, "halted"));
            out.reset = await call(vsm, `/${mv}:VisionStateMachine/${mv}:Reset`, cause);
            // Reset returns once the station is Ready; the state machine follows within its next look
            const startArgs = [await ext(3015, ""), await ext(3004, ""), await ext(3002, ""), await ext(3003, ""),
                { dataType: DataType.Variant, arrayType: 1, value: [] }];
            const start = `/${mv}:VisionStateMachine/${mv}:AutomaticModeStateMachine/${mv}:StartContinuous`;
            for (let i = 0; i < 100; i++) {
                out.start = await call(auto, start, startArgs);
                if (out.start.status !== "BadInvalidState") break;
                await new Promise((res) => setTimeout(res, 100));
            }
            out.start.outputs = [idOf(out.start.outputs[0]), out.start.outputs[1]];
            await until(since(out.events.length, ""));
        }
        await sub.terminate();
        stopped = true;
        await lookups;
    } finally {
        await session.close();
        await client.disconnect();
    }
    console.log("RESULT " + JSON.stringify(out));
}

main().catch((err) => {
    log(err?.stack ?? err);
    process.exit(1);
});
