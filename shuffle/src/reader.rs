//! `ShuffleReaderExec`: the leaf that starts a stage, streaming the files of an earlier stage.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::equivalence::{AcrossPartitions, ConstExpr};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{StreamExt, TryStreamExt};

use super::flight::{BatchStream, fetch_broadcast, fetch_remote, read_local_file};
use super::{MAX_CONCURRENT_SHUFFLE_FETCHES, ShuffleEnv, ShuffleLocation, resolve_shuffle_path};

/// Reads the output of stage `stage_id`: partition `p` streams every file in `locations[p]`.
///
/// Until the input stage has run, `locations` is empty for every partition (the scheduler fills
/// it in before the stage's tasks are sent). `broadcast` marks an input that every task of the
/// stage reads whole (a join's build side): each executor then fetches it once to its own disk.
#[derive(Debug)]
pub struct ShuffleReaderExec {
    stage_id: usize,
    schema: SchemaRef,
    locations: Vec<Vec<ShuffleLocation>>,
    broadcast: bool,
    equivalences: ColumnEquivalences,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

/// What the writing stage knew about its rows' columns beyond their order: columns that are
/// constant and columns equal to each other (say, after `WHERE d_year = 1999` or a join on
/// `a = b`). The rows a reader returns are the writer's rows, so these still hold; without
/// them an operator planned over the writer's input (a window partitioned by a constant column
/// its sort left out) no longer finds the order it was planned with.
///
/// A column constant only within each partition (a literal in one branch of a UNION) stays so
/// only where the reader's partitions are the writer's; a hash exchange mixes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnEquivalences {
    /// Indices of columns with one value in all rows.
    pub constants: Vec<usize>,
    /// Indices of columns with one value within each partition.
    pub partition_constants: Vec<usize>,
    /// Groups of column indices whose values are equal in every row.
    pub equal_groups: Vec<Vec<usize>>,
}

impl ColumnEquivalences {
    /// The column-level facts of `plan`'s output (facts about other expressions are dropped);
    /// per-partition constants only if `same_partitions` (the reader's partition `p` is the
    /// plan's partition `p`).
    pub fn of(plan: &dyn ExecutionPlan, same_partitions: bool) -> Self {
        let properties = plan.properties().equivalence_properties();
        let column_index = |expr: &Arc<dyn PhysicalExpr>| {
            expr.as_any().downcast_ref::<Column>().map(Column::index)
        };
        let mut facts = Self::default();
        for constant in properties.constants() {
            let Some(index) = column_index(&constant.expr) else {
                continue;
            };
            match constant.across_partitions {
                AcrossPartitions::Uniform(_) => facts.constants.push(index),
                AcrossPartitions::Heterogeneous if same_partitions => {
                    facts.partition_constants.push(index);
                }
                AcrossPartitions::Heterogeneous => {}
            }
        }
        facts.equal_groups = properties
            .eq_group()
            .iter()
            .map(|class| class.iter().filter_map(column_index).collect::<Vec<_>>())
            .filter(|group| group.len() > 1)
            .collect();
        facts
    }

    fn apply(&self, properties: &mut EquivalenceProperties, schema: &SchemaRef) -> Result<()> {
        let column = |index: usize| -> Result<Arc<dyn PhysicalExpr>> {
            Ok(Arc::new(Column::new_with_schema(
                schema.field(index).name(),
                schema,
            )?))
        };
        let columns = schema.fields().len();
        for group in &self.equal_groups {
            let mut members = group.iter().filter(|index| **index < columns);
            if let Some(first) = members.next() {
                let first = column(*first)?;
                for other in members {
                    properties.add_equal_conditions(Arc::clone(&first), column(*other)?)?;
                }
            }
        }
        let uniform = self
            .constants
            .iter()
            .map(|index| (index, AcrossPartitions::Uniform(None)));
        let per_partition = self
            .partition_constants
            .iter()
            .map(|index| (index, AcrossPartitions::Heterogeneous));
        let constants = uniform
            .chain(per_partition)
            .filter(|(index, _)| **index < columns)
            .map(|(index, across)| Ok(ConstExpr::new(column(*index)?, across)))
            .collect::<Result<Vec<_>>>()?;
        properties.add_constants(constants)?;
        Ok(())
    }
}

impl ShuffleReaderExec {
    /// A reader with `partitioning` (which mirrors the exchange it replaces) and the ordering
    /// each partition keeps; `locations` has one entry per output partition.
    pub fn try_new(
        stage_id: usize,
        schema: SchemaRef,
        partitioning: Partitioning,
        ordering: Option<LexOrdering>,
        locations: Vec<Vec<ShuffleLocation>>,
        broadcast: bool,
    ) -> Result<Self> {
        Self::build(
            stage_id,
            schema,
            partitioning,
            ordering,
            locations,
            broadcast,
            ColumnEquivalences::default(),
        )
    }

    fn build(
        stage_id: usize,
        schema: SchemaRef,
        partitioning: Partitioning,
        ordering: Option<LexOrdering>,
        locations: Vec<Vec<ShuffleLocation>>,
        broadcast: bool,
        equivalences: ColumnEquivalences,
    ) -> Result<Self> {
        if locations.len() != partitioning.partition_count() {
            return internal_err!(
                "shuffle reader of stage {stage_id}: {} location lists for {} partitions",
                locations.len(),
                partitioning.partition_count()
            );
        }
        let mut eq_properties = EquivalenceProperties::new(Arc::clone(&schema));
        equivalences.apply(&mut eq_properties, &schema)?;
        if let Some(ordering) = ordering {
            eq_properties.add_ordering(ordering);
        }
        let properties = PlanProperties::new(
            eq_properties,
            partitioning,
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            stage_id,
            schema,
            locations,
            broadcast,
            equivalences,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// A copy of this reader with `locations`, `broadcast` and `equivalences` replaced.
    fn rebuilt(
        &self,
        locations: Vec<Vec<ShuffleLocation>>,
        broadcast: bool,
        equivalences: ColumnEquivalences,
    ) -> Result<Self> {
        Self::build(
            self.stage_id,
            Arc::clone(&self.schema),
            self.properties.partitioning.clone(),
            self.ordering().cloned(),
            locations,
            broadcast,
            equivalences,
        )
    }

    /// The same reader with the input stage's file locations filled in (or trimmed).
    pub fn with_locations(&self, locations: Vec<Vec<ShuffleLocation>>) -> Result<Self> {
        self.rebuilt(locations, self.broadcast, self.equivalences.clone())
    }

    /// The same reader marked as a broadcast input.
    pub fn as_broadcast(&self) -> Result<Self> {
        self.rebuilt(self.locations.clone(), true, self.equivalences.clone())
    }

    /// The same reader knowing the writing stage's constant and equal columns.
    pub fn with_equivalences(&self, equivalences: ColumnEquivalences) -> Result<Self> {
        self.rebuilt(self.locations.clone(), self.broadcast, equivalences)
    }

    /// The constant and equal columns this reader declares.
    pub fn equivalences(&self) -> &ColumnEquivalences {
        &self.equivalences
    }

    /// The stage whose output this reads.
    pub fn stage_id(&self) -> usize {
        self.stage_id
    }

    /// Files per output partition.
    pub fn locations(&self) -> &[Vec<ShuffleLocation>] {
        &self.locations
    }

    /// Whether every task of the stage reads all of this input.
    pub fn is_broadcast(&self) -> bool {
        self.broadcast
    }

    /// The ordering of each partition, if any.
    pub fn ordering(&self) -> Option<&LexOrdering> {
        self.properties.output_ordering()
    }

    /// How the rows are partitioned.
    pub fn partitioning(&self) -> &Partitioning {
        &self.properties.partitioning
    }
}

impl DisplayAs for ShuffleReaderExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ShuffleReaderExec: stage={}, partitioning={}{}",
            self.stage_id,
            self.properties.partitioning,
            if self.broadcast { ", broadcast" } else { "" }
        )
    }
}

impl ExecutionPlan for ShuffleReaderExec {
    fn name(&self) -> &str {
        "ShuffleReaderExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let Some(locations) = self.locations.get(partition) else {
            return internal_err!(
                "shuffle reader of stage {} has no partition {partition}",
                self.stage_id
            );
        };
        let env = ShuffleEnv::of(&context)?;
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let bytes_read = MetricBuilder::new(&self.metrics).counter("bytes_read", partition);
        bytes_read.add(locations.iter().map(|l| l.bytes as usize).sum());
        let schema = Arc::clone(&self.schema);
        let broadcast = self.broadcast;
        let ordered = self.properties.output_ordering().is_some();
        let opens = futures::stream::iter(locations.clone())
            .filter(|location| futures::future::ready(location.rows > 0))
            .map(move |location| {
                let env = Arc::clone(&env);
                let schema = Arc::clone(&schema);
                async move { open_location(&env, &location, broadcast, &schema).await }
            });
        // A partition that keeps an ordering holds exactly one file per producer; reading the
        // files in order keeps it. Otherwise all producers stream at once.
        let batches: BatchStream = if ordered {
            opens.buffered(1).try_flatten().boxed()
        } else {
            opens
                .buffer_unordered(MAX_CONCURRENT_SHUFFLE_FETCHES)
                .try_flatten_unordered(MAX_CONCURRENT_SHUFFLE_FETCHES)
                .boxed()
        };
        let counted = batches.inspect_ok(move |batch| output_rows.add(batch.num_rows()));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            counted,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

async fn open_location(
    env: &ShuffleEnv,
    location: &ShuffleLocation,
    broadcast: bool,
    schema: &SchemaRef,
) -> Result<BatchStream> {
    let job_id = super::flight::job_of_path(&location.path);
    if location.executor_id == env.executor_id {
        return Ok(read_local_file(
            resolve_shuffle_path(&env.work_dir, job_id, &location.path)?,
            location.ranges.clone(),
        ));
    }
    if broadcast {
        let local = fetch_broadcast(
            &env.broadcast_cache,
            &env.clients,
            &env.work_dir,
            location,
            schema,
        )
        .await?;
        // The local copy holds just this location's rows, as one stream.
        let len = std::fs::metadata(&local)
            .map_err(|e| {
                DataFusionError::Execution(format!("broadcast copy {}: {e}", local.display()))
            })?
            .len();
        return Ok(read_local_file(local, vec![0..len]));
    }
    fetch_remote(&env.clients, location)
}
