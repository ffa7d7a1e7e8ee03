// node-opcua client playing the MES against linecheck's OPC UA server.
//
// Run by tests/opcua/test_node_mes.py:  node mes_client.mjs '<json options>'
// Protocol on stdout: the line "SUBSCRIBED" once the ResultReady subscription is live (the test
// then publishes verdicts), then one line "RESULT <json>" with everything received.
// Diagnostics go to stderr.
import {
    AttributeIds,
    BrowseDirection,
    ClientMonitoredItem,
    DataType,
    TimestampsToReturn,
    constructEventFilter,
} from "node-opcua-client";
import { makeClient, options, userSession } from "./connection.mjs";

const opt = options();
const NS_URI = "urn:linecheck";
const EVENT_FIELDS = [
    "EventType", "Time", "Message", "ResultId", "CameraId", "PartId", "RecipeId", "RecipeCode", "ResultCode",
    "Verdict", "Reason", "RejectMask", "DefectCount", "DefectClasses", "DefectCounts", "ProcessingUs",
    "VerdictTime", "ImageRef", "AlarmName", "Active",
];
const log = (...a) => console.error("[mes_client]", ...a);
const plain = (v) =>
    typeof v === "bigint" ? Number(v) : Array.isArray(v) || ArrayBuffer.isView(v) ? Array.from(v, plain) : v;

function uint64(v) {
    // node-opcua returns (U)Int64 as [high, low]
    return Array.isArray(v) && v.length === 2 ? v[0] * 2 ** 32 + v[1] : plain(v);
}

async function browseChildren(session, nodeId, ns = undefined) {
    // ns: only children whose browse name is in that namespace (BaseEventType also has the
    // OPC 40100 ResultReadyEventType, of the same name in the MachineVision namespace)
    const r = await session.browse({
        nodeId,
        browseDirection: BrowseDirection.Forward,
        includeSubtypes: true,
        resultMask: 63,
    });
    const out = {};
    for (const ref of r.references ?? []) {
        if (ns === undefined || ref.browseName.namespaceIndex === ns) out[ref.browseName.name] = ref.nodeId.toString();
    }
    return out;
}

async function call(session, objectId, methodId, inputArguments) {
    const r = await session.call({ objectId, methodId, inputArguments });
    return { status: r.statusCode.name, outputs: (r.outputArguments ?? []).map((v) => plain(v.value)) };
}

async function main() {
    const out = { events: [], alarms: [], history: [], historyPages: 0, getResults: [], getResultsPages: 0 };
    const client = await makeClient(opt, "linecheck-test-mes");
    await client.connect(opt.endpoint);
    const session = await userSession(client, opt.operator, opt.operatorPassword);
    try {
        const nsArray = (await session.read({ nodeId: "ns=0;i=2255", attributeId: AttributeIds.Value })).value.value;
        const ns = nsArray.indexOf(NS_URI);
        if (ns < 0) throw new Error("namespace urn:linecheck not found");
        // browse Objects -> Stations -> <station>
        const objects = await browseChildren(session, "ns=0;i=85");
        const stations = await browseChildren(session, objects["Stations"]);
        const stationId = stations[opt.stationId];
        const children = await browseChildren(session, stationId);
        out.browse = Object.keys(children).sort();
        const eventTypes = await browseChildren(session, "ns=0;i=2041", ns);
        const resultReadyType = eventTypes["ResultReadyEventType"];

        // subscribe to ResultReady (and alarms) on the station object
        const sub = await session.createSubscription2({
            requestedPublishingInterval: 50, requestedLifetimeCount: 6000, requestedMaxKeepAliveCount: 20,
            maxNotificationsPerPublish: 0, publishingEnabled: true, priority: 10,
        });
        const filter = constructEventFilter(EVENT_FIELDS.map((f, i) => (i < 3 ? f : `${ns}:${f}`)));
        const item = ClientMonitoredItem.create(
            sub, { nodeId: stationId, attributeId: AttributeIds.EventNotifier },
            { samplingInterval: 0, discardOldest: false, queueSize: 100000, filter }, TimestampsToReturn.Both,
        );
        let done;
        const allEvents = new Promise((resolve) => (done = resolve));
        item.on("changed", (fields) => {
            const ev = {};
            EVENT_FIELDS.forEach((name, i) => (ev[name] = plain(fields[i].value)));
            ev.EventType = fields[0].value ? fields[0].value.toString() : null;
            ev.PartId = uint64(ev.PartId);
            ev.Time = ev.Time instanceof Date ? ev.Time.toISOString() : ev.Time;
            ev.VerdictTime = ev.VerdictTime instanceof Date ? ev.VerdictTime.toISOString() : ev.VerdictTime;
            ev.Message = ev.Message?.text ?? null;
            if (ev.EventType === resultReadyType) out.events.push(ev);
            else out.alarms.push({ AlarmName: ev.AlarmName, Active: ev.Active, Message: ev.Message });
            if (out.events.length >= opt.expectedEvents) done();
        });
        await new Promise((resolve, reject) => {
            item.once("initialized", resolve);
            item.once("err", reject);
        });
        process.stdout.write("SUBSCRIBED\n");
        const timeout = new Promise((resolve) => setTimeout(resolve, opt.eventTimeoutMs));
        await Promise.race([allEvents, timeout]);
        await new Promise((resolve) => setTimeout(resolve, 300)); // catch anything beyond expected

        // read the full history of LastResult, following continuation points
        const from = new Date(opt.fromIso);
        const to = new Date(opt.toIso);
        let cp = null;
        do {
            const r = await session.readHistoryValue(
                { nodeId: children["LastResult"], continuationPoint: cp ?? undefined }, from, to,
            );
            if (r.statusCode.isNotGood()) throw new Error(`history read: ${r.statusCode.name}`);
            out.historyPages += 1;
            for (const dv of r.historyData.dataValues ?? []) out.history.push(dv.value.value);
            cp = r.continuationPoint && r.continuationPoint.length ? r.continuationPoint : null;
        } while (cp);

        // GetResults, page by page
        for (let start = 0; ; ) {
            const r = await call(session, stationId, children["GetResults"], [
                { dataType: DataType.DateTime, value: from },
                { dataType: DataType.DateTime, value: to },
                { dataType: DataType.UInt32, value: start },
                { dataType: DataType.UInt32, value: opt.pageSize },
            ]);
            if (r.status !== "Good") throw new Error(`GetResults: ${r.status}`);
            out.getResultsPages += 1;
            out.total = r.outputs[1];
            out.getResults.push(...r.outputs[0]);
            start += r.outputs[0].length;
            if (r.outputs[0].length === 0 || start >= r.outputs[1]) break;
        }
        const counters = {};
        for (const name of ["Inspected", "Rejected", "FailSafe", "State", "ActiveRecipe", "CameraLinkState"]) {
            counters[name] = uint64((await session.read({ nodeId: children[name], attributeId: AttributeIds.Value })).value.value);
        }
        out.counters = counters;

        // SelectRecipe: known recipe as operator, then an unknown one
        const s = { dataType: DataType.String };
        out.selectOk = await call(session, stationId, children["SelectRecipe"], [{ ...s, value: opt.recipe }]);
        out.selectUnknown = await call(session, stationId, children["SelectRecipe"], [{ ...s, value: "no-such-recipe" }]);

        // a reader may read but not switch recipes
        const readerSession = await userSession(client, opt.reader, opt.readerPassword);
        out.readerSelect = await call(readerSession, stationId, children["SelectRecipe"], [{ ...s, value: opt.recipe }]);
        await readerSession.close();

        // a wrong password is refused
        try {
            const bad = await userSession(client, opt.operator, "wrong-password");
            await bad.close();
            out.wrongPassword = "accepted";
        } catch (err) {
            out.wrongPassword = String(err.message).split("\n")[0];
        }
        await sub.terminate();
    } finally {
        await session.close();
        await client.disconnect();
    }
    return "RESULT " + JSON.stringify(out) + "\n";
}

main().then(
    // stdout to a pipe is asynchronous in node: exit only once the result is flushed
    (line) => process.stdout.write(line, () => process.exit(0)),
    (err) => {
        log("failed:", err && err.stack ? err.stack : err);
        process.exit(1);
    },
);
