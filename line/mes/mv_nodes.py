"""The OPC 40100-1 (OPC UA for Machine Vision) address space of one station: load the standard's
nodeset, instantiate one ``VisionSystemType`` object and keep only the parts linecheck serves.

Why the standard's own nodeset (``line/mes/nodesets/Opc.Ua.MachineVision.NodeSet2.xml``, OPC
Foundation MIT licence, taken from the npm package ``node-opcua-nodesets``): a MES client that
loads the same file finds the same type NodeIds, browse names and method signatures as on any
other 40100 server. asyncua's ``import_xml`` also registers the nodeset's structures
(``ua.ResultDataType``, ``ua.RecipeIdInternalDataType``, ...) for encoding.

Why instantiate everything and then delete: asyncua's instantiation copies the optional parts
of the type as well, and (contrary to the spec) the state objects of the state machines, which
carry no modelling rule. The optional parts linecheck does not implement are removed, so a
client never finds a method that cannot work; the copied states are removed, so
``CurrentState/Id`` points at the type's state nodes as OPC 10000-16 requires.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from asyncua import Node, Server, ua
from asyncua.common.structures104 import load_data_type_definitions

MV_NAMESPACE = "http://opcfoundation.org/UA/MachineVision"
NODESET = "Opc.Ua.MachineVision.NodeSet2.xml"
FOLDER = "VisionSystems"

# NodeIds (numeric, in the MachineVision namespace) of the type nodes used by linecheck
VISION_SYSTEM_TYPE = 1003
RESULT_READY_EVENT_TYPE = 1024
STATE_CHANGED_EVENT_TYPE = 1018
JOB_STARTED_EVENT_TYPE = 1013
READY_EVENT_TYPE = 1023
ERROR_EVENT_TYPE = 1019
ERROR_RESOLVED_EVENT_TYPE = 1020
DIAGNOSTIC_INFO_EVENT_TYPE = 1037
# structures linecheck fills in, by their DataType NodeIds
STRUCTURES = {
    # OPC 40100-1 1.00 makes even plain ids structures with one TrimmedString field, Id
    "ProductIdDataType": 3003,
    "PartIdDataType": 3004,
    "MeasIdDataType": 3015,
    "JobIdDataType": 3016,
    "ResultIdDataType": 3021,
    "RecipeIdExternalDataType": 3002,
    "ProcessingTimesDataType": 3005,
    "ResultDataType": 3006,
    "ConfigurationIdDataType": 3008,
    "RecipeIdInternalDataType": 3013,
    "SystemStateDescriptionDataType": 3024,
}
# states of VisionStateMachineType and VisionAutomaticModeStateMachineType (type nodes)
VISION_STATES = {"Preoperational": 5028, "Halted": 5029, "Error": 5030, "Operational": 5031}
AUTOMATIC_STATES = {"Initialized": 5056, "Ready": 5057, "SingleExecution": 5058, "ContinuousExecution": 5059}

# optional parts of the type that linecheck does not implement (paths below the instance)
_NOT_IMPLEMENTED: tuple[tuple[str, ...], ...] = (
    ("ConfigurationManagement",),
    ("SafetyStateManagement",),
    ("DiagnosticLevel",),
    ("VisionStateMachine", "ConfirmAll"),
    ("VisionStateMachine", "SelectModeAutomatic"),
    ("VisionStateMachine", "ErrorStepModel"),
    ("VisionStateMachine", "HaltedStepModel"),
    ("VisionStateMachine", "PreoperationalStepModel"),
    ("VisionStateMachine", "AutomaticModeStateMachine", "SimulationMode"),
    ("VisionStateMachine", "AutomaticModeStateMachine", "ContinuousExecutionStepModel"),
    ("VisionStateMachine", "AutomaticModeStateMachine", "InitializedStepModel"),
    ("VisionStateMachine", "AutomaticModeStateMachine", "ReadyStepModel"),
    ("VisionStateMachine", "AutomaticModeStateMachine", "SingleExecutionStepModel"),
    ("RecipeManagement", "AddRecipe"),
    ("RecipeManagement", "PrepareProduct"),
    ("RecipeManagement", "Products"),
    ("RecipeManagement", "Recipes"),
    ("RecipeManagement", "RecipeTransfer"),
    ("RecipeManagement", "ReleaseRecipeHandle"),
    ("RecipeManagement", "RemoveRecipe"),
    ("RecipeManagement", "UnlinkProduct"),
    ("RecipeManagement", "UnprepareProduct"),
    ("ResultManagement", "ReleaseResultHandle"),
    ("ResultManagement", "Results"),
    ("ResultManagement", "ResultTransfer"),
)

# method name -> path below the instance
METHODS: dict[str, tuple[str, ...]] = {
    "Halt": ("VisionStateMachine", "Halt"),
    "Reset": ("VisionStateMachine", "Reset"),
    "Abort": ("VisionStateMachine", "AutomaticModeStateMachine", "Abort"),
    "StartContinuous": ("VisionStateMachine", "AutomaticModeStateMachine", "StartContinuous"),
    "StartSingleJob": ("VisionStateMachine", "AutomaticModeStateMachine", "StartSingleJob"),
    "Stop": ("VisionStateMachine", "AutomaticModeStateMachine", "Stop"),
    "GetRecipeListFiltered": ("RecipeManagement", "GetRecipeListFiltered"),
    "PrepareRecipe": ("RecipeManagement", "PrepareRecipe"),
    "UnprepareRecipe": ("RecipeManagement", "UnprepareRecipe"),
    "GetResultById": ("ResultManagement", "GetResultById"),
    "GetResultComponentsById": ("ResultManagement", "GetResultComponentsById"),
    "GetResultListFiltered": ("ResultManagement", "GetResultListFiltered"),
}


@dataclass
class VisionSystemNodes:
    mv_idx: int  # MachineVision namespace index
    system: Node  # the VisionSystemType instance
    vision_state: Node  # VisionStateMachine/CurrentState
    automatic_state: Node  # VisionStateMachine/AutomaticModeStateMachine/CurrentState
    system_state: Node  # SystemState
    methods: dict[str, Node]

    def type_node(self, numeric_id: int) -> ua.NodeId:
        return numeric_node_id(numeric_id, self.mv_idx)

    def new(self, structure: str) -> Any:
        """A new instance of a MachineVision structure, by DataType NodeId: the Id structures
        share their Python names with their base type in asyncua's ``ua`` module."""
        return ua.extension_objects_by_datatype[self.type_node(STRUCTURES[structure])]()


def numeric_node_id(identifier: int, namespace: int = 0) -> ua.NodeId:
    """asyncua's hints want its NewType wrappers; plain ints are what it uses at run time."""
    return ua.NodeId(identifier, namespace)  # type: ignore[arg-type]


async def _definition(node: Node) -> Any:
    value = (await node.read_attribute(ua.AttributeIds.DataTypeDefinition)).Value
    return value.Value if value is not None else None


class _KnownCollisions(logging.Filter):
    """The Id structures share their names with their base type; asyncua warns about each on
    every start. Expected and handled (``VisionSystemNodes.new`` goes by NodeId): not logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Browsename collision")


@contextmanager
def _quiet_collisions() -> Iterator[None]:
    logger, known = logging.getLogger("asyncua.ua.uatypes"), _KnownCollisions()
    logger.addFilter(known)
    try:
        yield
    finally:
        logger.removeFilter(known)


def nodeset_path() -> str:
    return str(resources.files("line.mes") / "nodesets" / NODESET)


async def _complete_structure_definitions(server: Server, mv_idx: int) -> None:
    """The nodeset gives the Id structures (``RecipeIdExternalDataType``,
    ``RecipeIdInternalDataType``, ``ConfigurationIdDataType``, ...) an empty ``<Definition/>``:
    they only subtype ``BinaryIdBaseDataType``. A client that builds its types from the server's
    ``DataTypeDefinition`` attributes (asyncua's ``load_data_type_definitions``) then cannot
    decode them, nor any structure that nests them (``ResultDataType``). OPC 10000-3 wants a
    subtype's definition to list all fields, inherited ones included: write that."""
    base = numeric_node_id(ua.ObjectIds.Structure)
    for dtype in await server.get_node(base).get_children(refs=ua.ObjectIds.HasSubtype):
        await _complete_subtypes(server, dtype, mv_idx)


async def _complete_subtypes(server: Server, parent: Node, mv_idx: int) -> None:
    parent_def = await _definition(parent)
    for child in await parent.get_children(refs=ua.ObjectIds.HasSubtype):
        if child.nodeid.NamespaceIndex == mv_idx and isinstance(parent_def, ua.StructureDefinition):
            own = await _definition(child)
            if own is None or not own.Fields:
                encodings = await child.get_referenced_nodes(refs=ua.ObjectIds.HasEncoding)
                binary = [e for e in encodings if (await e.read_browse_name()).Name == "Default Binary"]
                sdef = ua.StructureDefinition(
                    DefaultEncodingId=binary[0].nodeid if binary else ua.NodeId(),
                    BaseDataType=parent.nodeid,
                    StructureType=parent_def.StructureType,
                    Fields=list(parent_def.Fields),
                )
                await child.write_attribute(
                    ua.AttributeIds.DataTypeDefinition, ua.DataValue(ua.Variant(sdef))
                )
        await _complete_subtypes(server, child, mv_idx)


async def _child(node: Node, mv_idx: int, path: tuple[str, ...]) -> Node:
    return await node.get_child([f"{mv_idx}:{name}" for name in path])


async def build_vision_system(server: Server, idx: int, station_id: str) -> VisionSystemNodes:
    """Import the nodeset (once per server) and add ``Objects/<idx>:VisionSystems/<idx>:<station_id>``."""
    with _quiet_collisions():
        await server.import_xml(nodeset_path())
        mv_idx = await server.get_namespace_index(MV_NAMESPACE)
        await _complete_structure_definitions(server, mv_idx)
        # classes (and encodings) for the completed structures
        await load_data_type_definitions(server, overwrite_existing=True)
    folder = await server.nodes.objects.add_folder(idx, FOLDER)
    system = await folder.add_object(idx, station_id, objecttype=numeric_node_id(VISION_SYSTEM_TYPE, mv_idx))
    doomed = [await _child(system, mv_idx, path) for path in _NOT_IMPLEMENTED]
    for machine in (("VisionStateMachine",), ("VisionStateMachine", "AutomaticModeStateMachine")):
        parent = await _child(system, mv_idx, machine)
        for state in (*VISION_STATES, *AUTOMATIC_STATES):
            try:
                doomed.append(await parent.get_child(f"{mv_idx}:{state}"))
            except ua.UaStatusCodeError:
                continue
    await server.delete_nodes(doomed, recursive=True)
    vision_sm = await _child(system, mv_idx, ("VisionStateMachine",))
    auto_sm = await _child(vision_sm, mv_idx, ("AutomaticModeStateMachine",))
    methods = {name: await _child(system, mv_idx, path) for name, path in METHODS.items()}
    return VisionSystemNodes(
        mv_idx=mv_idx,
        system=system,
        vision_state=await vision_sm.get_child("0:CurrentState"),
        automatic_state=await auto_sm.get_child("0:CurrentState"),
        system_state=await _child(system, mv_idx, ("SystemState",)),
        methods=methods,
    )
