// node-opcua client playing a MES that knows OPC 40100-1 (OPC UA for Machine Vision).
//
// Run by tests/opcua/test_node_machine_vision.py:  node mv_client.mjs '<json options>'
// Protocol on stdout: "SUBSCRIBED" once ResultReadyEvent is subscribed on the Server object
// (the test then publishes verdicts), then one line "RESULT <json>". Diagnostics on stderr.
// The MachineVision structures are built from the server's DataTypeDefinitions
// (constructExtensionObject), by the standard nodeset's NodeIds in its namespace.
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
const RESULT_READY = 1024; // ResultReadyEventType in the MachineVision nodeset
const T = { // DataTypes of the MachineVision nodeset
    RecipeIdExternal: 3002, RecipeIdInternal: 3013, ConfigurationId: 3008, ProductId: 3003, PartId: 3004,
    MeasId: 3015, JobId: 3016, ResultId: 3021,
};
const EVENT_FIELDS = ["EventType", "Message", "ResultId", "IsPartial", "ResultState", "JobId", "PartId", "CreationTime",
    "InternalRecipeId", "InternalConfigurationId", "ProcessingTimes", "ResultContent"];
const log = (...a) => console.error("[mv_client]", ...a);
const idOf = (v) => (v && typeof v === "object" && "id" in v ? v.id : v ?? null);

async function main() {
    const out = { events: [], otherEvents: 0, byId: {}, methods: {} };
    const client = await makeClient(opt, "linecheck-test-mv-mes", 120000);
    await client.connect(opt.endpoint);
    const session = await userSession(client, opt.engineer, opt.engineerPassword);
    // a second connection: asyncua serves one session per secure channel
    const readerClient = await makeClient(opt, "linecheck-test-mv-mes", 120000);
    await readerClient.connect(opt.endpoint);
    const reader = await userSession(readerClient, opt.reader, opt.readerPassword);
    try {
        const nsArray = (await session.read({ nodeId: "ns=0;i=2255", attributeId: AttributeIds.Value })).value.value;
        const mv = nsArray.indexOf(MV_URI);
        const lc = nsArray.indexOf(LC_URI);
        if (mv < 0 || lc < 0) throw new Error(`namespaces missing: ${nsArray}`);
        const mvId = (i) => resolveNodeId(`ns=${mv};i=${i}`);
        const resolve = async (path) => {
            const r = await session.translateBrowsePath(makeBrowsePath("RootFolder", path));
            if (r.statusCode.isNotGood()) throw new Error(`${path}: ${r.statusCode.name}`);
            return r.targets[0].targetId;
        };
        const root = `/Objects/${lc}:VisionSystems/${lc}:${opt.stationId}`;
        const system = await resolve(root);
        const node = (rel) => resolve(`${root}.${rel.split("/").map((n) => (n.includes(":") ? n : `${mv}:${n}`)).join(".")}`);
        const read = async (nodeId) => (await session.read({ nodeId, attributeId: AttributeIds.Value })).value.value;
        out.typeDefinition = (await session.browse({ nodeId: system, referenceTypeId: "HasTypeDefinition", resultMask: 63 }))
            .references[0].nodeId.toString();
        out.visionTypeId = mvId(1003).toString();
        const vsm = "VisionStateMachine";
        const auto = `${vsm}/AutomaticModeStateMachine`;
        out.state = {
            vision: (await read(await node(`${vsm}/0:CurrentState`))).text,
            visionId: (await read(await node(`${vsm}/0:CurrentState/0:Id`))).toString(),
            automatic: (await read(await node(`${auto}/0:CurrentState`))).text,
            automaticId: (await read(await node(`${auto}/0:CurrentState/0:Id`))).toString(),
            operationalTypeId: mvId(5031).toString(),
            continuousTypeId: mvId(5059).toString(),
            systemState: (await read(await node("SystemState"))).state,
        };

        // ResultReadyEvent on the Server object
        const sub = await session.createSubscription2({
            requestedPublishingInterval: 50, requestedLifetimeCount: 6000, requestedMaxKeepAliveCount: 20,
            maxNotificationsPerPublish: 0, publishingEnabled: true, priority: 10,
        });
        const filter = constructEventFilter(EVENT_FIELDS.map((f, i) => (i < 2 ? f : `${mv}:${f}`)));
        const item = ClientMonitoredItem.create(
            sub, { nodeId: "ns=0;i=2253", attributeId: AttributeIds.EventNotifier },
            { samplingInterval: 0, discardOldest: false, queueSize: 100000, filter }, TimestampsToReturn.Both,
        );
        let done;
        const allEvents = new Promise((r) => (done = r));
        const readyType = mvId(RESULT_READY).toString();
        item.on("changed", (fields) => {
            const f = Object.fromEntries(EVENT_FIELDS.map((name, i) => [name, fields[i].value]));
            if (!f.EventType || f.EventType.toString() !== readyType) {
                out.otherEvents += 1;
                return;
            }
            const content = (f.ResultContent ?? []).map((v) => (v && v.value !== undefined ? v.value : v));
            out.events.push({
                ResultId: idOf(f.ResultId), IsPartial: f.IsPartial, ResultState: f.ResultState, JobId: idOf(f.JobId),
                PartId: idOf(f.PartId), CreationTime: f.CreationTime?.toISOString?.() ?? null,
                InternalRecipeId: idOf(f.InternalRecipeId), InternalConfigurationId: idOf(f.InternalConfigurationId),
                ProcessingMs: f.ProcessingTimes?.processingDuration ?? null, ResultContent: content,
            });
            if (out.events.length >= opt.expectedEvents) done();
        });
        await new Promise((r, j) => { item.once("initialized", r); item.once("err", j); });
        process.stdout.write("SUBSCRIBED\n");
        await Promise.race([allEvents, new Promise((r) => setTimeout(r, opt.eventTimeoutMs))]);
        await new Promise((r) => setTimeout(r, 500)); // anything beyond the expected count
        await sub.terminate();

        const ext = (type, fields) => session.constructExtensionObject(mvId(type), fields);
        const X = (value) => ({ dataType: DataType.ExtensionObject, value });
        const I32 = (value) => ({ dataType: DataType.Int32, value });
        const U32 = (value) => ({ dataType: DataType.UInt32, value });
        const S = (value) => ({ dataType: DataType.String, value });
        const call = async (s, path, inputArguments) => {
            const parts = path.split("/");
            const objectId = parts.length > 1 ? await node(parts.slice(0, -1).join("/")) : system;
            const r = await s.call({ objectId, methodId: await node(path), inputArguments });
            return { status: r.statusCode.name, outputs: (r.outputArguments ?? []).map((v) => v.value) };
        };

        // GetResultById for every event, as the MES (reader) role
        const timeout = I32(0);
        for (const ev of out.events) {
            const r = await call(reader, "ResultManagement/GetResultById", [X(await ext(T.ResultId, { id: ev.ResultId })), timeout]);
            const res = r.outputs[1];
            out.byId[ev.ResultId] = {
                status: r.status, error: r.outputs[2], resultState: res?.resultState,
                content: res?.resultContent?.[0]?.value ?? null,
            };
        }
        const m = out.methods;
        const noRecipe = X(await ext(T.RecipeIdExternal, { id: "" }));
        const recipe = async (id) => X(await ext(T.RecipeIdInternal, { id }));
        const ids = async (id) => [X(await ext(T.MeasId, { id: "" })), X(await ext(T.PartId, { id: "" })),
            X(await ext(T.RecipeIdExternal, { id })), X(await ext(T.ProductId, { id: "" })), { dataType: DataType.Variant, arrayType: 1, value: [] }];
        const cause = [I32(0), S("mv_client")];
        const first = out.events[0]?.ResultId ?? "none";
        const filterArgs = async (state, max, start) => [I32(state), X(await ext(T.MeasId, { id: "" })),
            X(await ext(T.PartId, { id: "" })), noRecipe, await recipe(""), X(await ext(T.ConfigurationId, { id: "" })),
            X(await ext(T.ConfigurationId, { id: "" })), X(await ext(T.ProductId, { id: "" })), X(await ext(T.JobId, { id: "" })),
            U32(max), U32(start), I32(0)];

        m.getRecipeList = await call(session, "RecipeManagement/GetRecipeListFiltered",
            [noRecipe, X(await ext(T.ProductId, { id: "" })), I32(2), U32(0), U32(0), I32(0)]);
        m.getRecipeList.outputs[3] = (m.getRecipeList.outputs[3] ?? []).map(idOf);
        m.prepare = await call(session, "RecipeManagement/PrepareRecipe", [noRecipe, await recipe(opt.recipe)]);
        m.prepareUnknown = await call(session, "RecipeManagement/PrepareRecipe", [noRecipe, await recipe("no-such-recipe")]);
        m.prepareBadArgs = await call(session, "RecipeManagement/PrepareRecipe", [S("x")]);
        m.startOk = await call(session, `${auto}/StartContinuous`, await ids(opt.recipe));
        m.startRefused = await call(session, `${auto}/StartContinuous`, await ids(opt.badRecipe));
        m.startUnknown = await call(session, `${auto}/StartContinuous`, await ids("no-such-recipe"));
        m.startBadArgs = await call(session, `${auto}/StartContinuous`, [S("x")]);
        m.startReader = await call(reader, `${auto}/StartContinuous`, await ids(opt.recipe));
        m.unprepareActive = await call(session, "RecipeManagement/UnprepareRecipe", [noRecipe, await recipe(opt.recipe)]);
        m.unprepareOther = await call(session, "RecipeManagement/UnprepareRecipe", [noRecipe, await recipe(opt.otherRecipe)]);
        m.startSingleJob = await call(session, `${auto}/StartSingleJob`, await ids(""));
        m.stop = await call(session, `${auto}/Stop`, cause);
        m.abort = await call(session, `${auto}/Abort`, cause);
        m.halt = await call(session, `${vsm}/Halt`, cause);
        m.haltBadArgs = await call(session, `${vsm}/Halt`, [S("x"), S("y")]);
        m.reset = await call(session, `${vsm}/Reset`, cause);
        m.haltReader = await call(reader, `${vsm}/Halt`, cause);
        m.components = await call(reader, "ResultManagement/GetResultComponentsById", [X(await ext(T.ResultId, { id: first })), timeout]);
        m.components.outputs = { partId: idOf(m.components.outputs[6]), jobId: idOf(m.components.outputs[12]), error: m.components.outputs.at(-1) };
        m.unknownResult = await call(reader, "ResultManagement/GetResultById", [X(await ext(T.ResultId, { id: "no-such-result" })), timeout]);
        m.unknownResult.outputs = [m.unknownResult.outputs[2]];
        m.resultBadArgs = await call(reader, "ResultManagement/GetResultById", [I32(5), timeout]);
        // GetResultListFiltered: all Failed (fail-safe) results, 7 per page
        const failed = [];
        for (let start = 0, pages = 0; pages < 1000; pages++) {
            const r = await call(reader, "ResultManagement/GetResultListFiltered", await filterArgs(4, 7, start));
            if (r.status !== "Good") throw new Error(`GetResultListFiltered: ${r.status}`);
            failed.push(...(r.outputs[3] ?? []).map((x) => idOf(x.resultId)));
            start += (r.outputs[3] ?? []).length;
            if (r.outputs[0]) break;
        }
        m.failedResults = failed;
    } finally {
        await reader.close();
        await session.close();
        await readerClient.disconnect();
        await client.disconnect();
    }
    return "RESULT " + JSON.stringify(out) + "\n";
}

main().then(
    (line) => process.stdout.write(line, () => process.exit(0)),
    (err) => {
        log("failed:", err && err.stack ? err.stack : err);
        process.exit(1);
    },
);
