//! The RabbitMQ queue (`amqp_url`). The database stays the truth about every task —
//! its row, lease, attempts and result, exactly as in the [`EmbeddedQueue`] — and the
//! broker carries one persistent message per task to a worker that runs it:
//!
//! - A submission stores the row in a transaction that commits only once the broker has
//!   confirmed the message, so a task the client was told about is always in both; if
//!   the broker cannot take it, the client gets 503 and nothing is stored.
//! - A worker acknowledges the message only after the task's outcome is committed. A
//!   worker that dies leaves its messages unacknowledged and the broker hands them to
//!   another; the database lease decides who runs a task, so a redelivered message
//!   whose task has finished is dropped, and one whose task is still leased comes back
//!   a second later until the lease has expired.
//! - A task that failed every attempt leaves its message in the dead-letter queue.
//! - Every instance hears through a fan-out exchange which tasks finished, so a client
//!   waiting on one API instance learns at once of a task a worker elsewhere ran.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use super::embedded::EmbeddedQueue;
use super::{BrokerHealth, QueueError, Recorded, Task, TaskFailure, TaskKind, TaskQueue, TaskStatus};
use crate::store::tasks as task_store;

/// How long a broker call may take before the queue counts the broker as unreachable.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);
/// A message whose task row does not exist this long after it was published belongs to
/// a submission whose transaction never committed: it is dropped.
const MISSING_ROW_GRACE: Duration = Duration::from_secs(60);
/// How long a message whose task another worker holds waits before it goes back.
const HELD_ELSEWHERE_RETRY: Duration = Duration::from_secs(1);
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(10);

/// Where the queue connects and what it does there.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    pub url: String,
    /// Starts every queue and exchange name, so deployments (and tests) can share a broker.
    pub prefix: String,
    /// Messages a process takes before acknowledging any: its worker count.
    pub prefetch: u16,
    /// Whether this process runs workers; an API-only instance only publishes.
    pub consume: bool,
}

pub struct AmqpQueue {
    rows: EmbeddedQueue,
    settings: AmqpSettings,
    /// Tells this instance's own announcements apart on the fan-out exchange.
    instance: String,
    /// The confirm-mode channel tasks are published on; `None` while disconnected.
    publisher: Mutex<Option<Channel>>,
    /// Why the broker is unreachable, in plain words, while it is.
    last_error: Mutex<Option<String>>,
    /// Messages received and not yet claimed.
    arrived: Mutex<VecDeque<Delivery>>,
    arrival: Notify,
    /// The messages of the tasks this process's workers run, settled once the outcome is
    /// committed.
    held: Mutex<HashMap<String, Acker>>,
}

/// What the broker should do with a task's message once its outcome is committed.
#[derive(Debug, Clone, Copy)]
enum Settle {
    /// The task ended: the message is done.
    Done,
    /// The task will run again: the message goes back to the queue.
    Again,
    /// The task failed every attempt: the message moves to the dead-letter queue.
    Dead,
}

impl AmqpQueue {
    /// The queue, connecting (and reconnecting, with capped backoff) in the background
    /// until `shutdown`.
    pub fn start(rows: EmbeddedQueue, settings: AmqpSettings, shutdown: CancellationToken) -> Arc<Self> {
        let queue = Arc::new(Self {
            rows,
            settings,
            instance: uuid::Uuid::new_v4().to_string(),
            publisher: Mutex::new(None),
            last_error: Mutex::new(Some("not connected yet".into())),
            arrived: Mutex::default(),
            arrival: Notify::new(),
            held: Mutex::default(),
        });
        tokio::spawn(queue.clone().stay_connected(shutdown));
        queue
    }

    fn task_queue_name(&self, kind: TaskKind) -> String {
        format!("{}tasks.{}", self.settings.prefix, kind.as_str())
    }

    fn dead_letter_queue_name(&self) -> String {
        format!("{}tasks.dead", self.settings.prefix)
    }

    fn finished_exchange_name(&self) -> String {
        format!("{}tasks.finished", self.settings.prefix)
    }

    async fn stay_connected(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(250);
        while !shutdown.is_cancelled() {
            // Named so that an operator (or a test) can tell Rollcall's connections apart.
            let role = if self.settings.consume { "worker" } else { "api" };
            let name = format!("{}{role}-{}", self.settings.prefix, self.instance);
            let properties = ConnectionProperties::default().with_connection_name(name.into());
            let ended = match Connection::connect(&self.settings.url, properties).await {
                Ok(connection) => {
                    backoff = Duration::from_millis(250);
                    tokio::select! {
                        ended = self.serve(&connection) => ended,
                        () = shutdown.cancelled() => Ok(()),
                    }
                }
                Err(error) => Err(error),
            };
            self.disconnected(ended.err().map(|error| describe(&error)));
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => {}
            }
            backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
        }
    }

    /// Declares the queues, starts consuming and passes on what arrives until the
    /// connection breaks (an error, or the consumers' end).
    async fn serve(&self, connection: &Connection) -> lapin::Result<()> {
        let publisher = connection.create_channel().await?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await?;
        self.declare_task_queues(&publisher).await?;
        let mut streams = vec![self.consume_finished(&publisher).await?];
        if self.settings.consume {
            let channel = connection.create_channel().await?;
            channel.basic_qos(self.settings.prefetch.max(1), BasicQosOptions { global: true }).await?;
            for kind in TaskKind::ALL {
                let tag = format!("{}-{}", self.instance, kind.as_str());
                let consumer = channel
                    .basic_consume(
                        self.task_queue_name(kind).into(),
                        tag.into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                streams.push(consumer);
            }
        }
        *self.publisher.lock().expect("publisher lock") = Some(publisher);
        *self.last_error.lock().expect("error lock") = None;
        tracing::info!(consuming = self.settings.consume, "connected to RabbitMQ");
        let finished_exchange = self.finished_exchange_name();
        let mut deliveries = futures::stream::select_all(streams);
        while let Some(delivery) = deliveries.next().await {
            let delivery = delivery?;
            if delivery.exchange.as_str() == finished_exchange {
                self.heard_finished(&delivery);
            } else {
                self.arrived.lock().expect("arrivals lock").push_back(delivery);
                self.arrival.notify_one();
            }
        }
        Ok(())
    }

    async fn declare_task_queues(&self, channel: &Channel) -> lapin::Result<()> {
        let dead = self.dead_letter_queue_name();
        channel.queue_declare(dead.as_str().into(), QueueDeclareOptions::durable(), FieldTable::default()).await?;
        let mut arguments = FieldTable::default();
        arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from("")));
        arguments.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(LongString::from(dead.as_str())));
        for kind in TaskKind::ALL {
            channel
                .queue_declare(self.task_queue_name(kind).into(), QueueDeclareOptions::durable(), arguments.clone())
                .await?;
        }
        Ok(())
    }

    /// A queue of this instance's own, bound to the fan-out exchange of finished tasks.
    async fn consume_finished(&self, channel: &Channel) -> lapin::Result<lapin::Consumer> {
        let exchange = self.finished_exchange_name();
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Fanout,
                // Gone with the last instance's queue: nothing to clean up.
                ExchangeDeclareOptions { auto_delete: true, ..ExchangeDeclareOptions::default() },
                FieldTable::default(),
            )
            .await?;
        let own = channel.queue_declare("".into(), QueueDeclareOptions::exclusive(), FieldTable::default()).await?;
        channel
            .queue_bind(
                own.name().clone(),
                exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let options = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        channel.basic_consume(own.name().clone(), "".into(), options, FieldTable::default()).await
    }

    /// The connection is gone: messages received or held through it are the broker's to
    /// redeliver now.
    fn disconnected(&self, error: Option<String>) {
        self.publisher.lock().expect("publisher lock").take();
        self.arrived.lock().expect("arrivals lock").clear();
        self.held.lock().expect("held lock").clear();
        let error = error.unwrap_or_else(|| "the connection was closed".into());
        tracing::warn!(error = %error, "RabbitMQ connection lost; reconnecting");
        *self.last_error.lock().expect("error lock") = Some(error);
    }

    fn heard_finished(&self, delivery: &Delivery) {
        let from_us = delivery.properties.app_id().as_ref().is_some_and(|app| app.as_str() == self.instance);
        if !from_us && let Ok(id) = std::str::from_utf8(&delivery.data) {
            self.rows.announce(id);
        }
    }

    fn publisher(&self) -> Result<Channel, QueueError> {
        let unavailable = || {
            let reason = self.last_error.lock().expect("error lock").clone();
            QueueError::Unavailable(reason.unwrap_or_else(|| "RabbitMQ is not connected".into()))
        };
        self.publisher.lock().expect("publisher lock").clone().ok_or_else(unavailable)
    }

    async fn publish(&self, channel: &Channel, kind: TaskKind, id: &str) -> Result<(), QueueError> {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(id.into())
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
            .with_app_id(self.instance.as_str().into());
        let routing_key: ShortString = self.task_queue_name(kind).into();
        // Mandatory: a message no queue takes comes back instead of vanishing.
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let publish =
            async { channel.basic_publish("".into(), routing_key, options, id.as_bytes(), properties).await?.await };
        match tokio::time::timeout(BROKER_TIMEOUT, publish).await {
            Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(_)))) => {
                Err(QueueError::Unavailable(format!("RabbitMQ has no queue {:?}", self.task_queue_name(kind))))
            }
            Ok(Ok(Confirmation::Nack(_))) => Err(QueueError::Unavailable("RabbitMQ refused the task".into())),
            Ok(Err(error)) => Err(QueueError::Unavailable(describe(&error))),
            Err(_) => Err(QueueError::Unavailable("RabbitMQ did not confirm the task in time".into())),
        }
    }

    /// Tells the other instances that `id` finished (best effort: they also look).
    async fn tell_finished(&self, id: &str) {
        let Ok(channel) = self.publisher() else { return };
        let properties = BasicProperties::default().with_app_id(self.instance.as_str().into());
        let exchange: ShortString = self.finished_exchange_name().into();
        let sent =
            channel.basic_publish(exchange, "".into(), BasicPublishOptions::default(), id.as_bytes(), properties).await;
        if let Err(error) = sent {
            tracing::debug!(error = %error, "could not announce a finished task");
        }
    }

    fn next_arrival(&self) -> Option<Delivery> {
        self.arrived.lock().expect("arrivals lock").pop_front()
    }

    /// A message whose task this worker cannot claim: done with if the task has ended
    /// (or never existed), otherwise back to the queue shortly.
    async fn pass_on(&self, id: &str, delivery: Delivery) -> Result<(), QueueError> {
        let row = task_store::find(self.rows.db(), id).await;
        let finished = matches!(&row, Ok(Some(record)) if record.status == task_store::COMPLETED || record.status == task_store::FAILED);
        let never_stored = matches!(&row, Ok(None)) && published_longer_ago_than(&delivery, MISSING_ROW_GRACE);
        if finished || never_stored {
            if never_stored {
                tracing::warn!(task.id = %id, "dropped the message of a task that was never stored");
            }
            settle(delivery.acker, Settle::Done).await;
        } else {
            put_back_later(delivery.acker);
        }
        row.map(drop).map_err(QueueError::from)
    }

    /// Settles the message of `task` once its update is `recorded`; when the update did
    /// not take (lease lost, database error), the message goes back so that the task's
    /// current holder, or the next claimer once the lease expires, decides.
    async fn settle_held(&self, task: &Task, recorded: &Result<Recorded, QueueError>, wanted: Settle) {
        let Some(acker) = self.held.lock().expect("held lock").remove(&task.id) else { return };
        match recorded {
            Ok(Recorded::Yes) => settle(acker, wanted).await,
            _ => put_back_later(acker),
        }
    }

    async fn ready_and_consumers(
        &self,
        channel: &Channel,
    ) -> lapin::Result<(Vec<(TaskKind, u32)>, Vec<(TaskKind, u32)>, u32)> {
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let (mut ready, mut consumers) = (Vec::new(), Vec::new());
        for kind in TaskKind::ALL {
            let queue =
                channel.queue_declare(self.task_queue_name(kind).into(), passive, FieldTable::default()).await?;
            ready.push((kind, queue.message_count()));
            consumers.push((kind, queue.consumer_count()));
        }
        let dead = channel.queue_declare(self.dead_letter_queue_name().into(), passive, FieldTable::default()).await?;
        Ok((ready, consumers, dead.message_count()))
    }
}

fn describe(error: &lapin::Error) -> String {
    format!("RabbitMQ: {error}")
}

fn published_longer_ago_than(delivery: &Delivery, age: Duration) -> bool {
    let Some(published) = *delivery.properties.timestamp() else { return true };
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    now.saturating_sub(published) > age.as_secs()
}

async fn settle(acker: Acker, how: Settle) {
    let settled = match how {
        Settle::Done => acker.ack(BasicAckOptions::default()).await,
        Settle::Again => acker.nack(BasicNackOptions { requeue: true, multiple: false }).await,
        Settle::Dead => acker.nack(BasicNackOptions { requeue: false, multiple: false }).await,
    };
    // A closed channel already gave the message back to the broker.
    if let Err(error) = settled {
        tracing::debug!(error = %error, "could not settle a task message");
    }
}

fn put_back_later(acker: Acker) {
    tokio::spawn(async move {
        tokio::time::sleep(HELD_ELSEWHERE_RETRY).await;
        settle(acker, Settle::Again).await;
    });
}

fn task_id_of(delivery: &Delivery) -> Option<String> {
    let id = std::str::from_utf8(&delivery.data).ok()?;
    (!id.is_empty() && id.len() <= 128).then(|| id.to_owned())
}

#[async_trait::async_trait]
impl TaskQueue for AmqpQueue {
    async fn submit(
        &self,
        kind: TaskKind,
        owner: &str,
        subject: Option<i64>,
        payload: &[u8],
    ) -> Result<String, QueueError> {
        let channel = self.publisher()?;
        self.rows.check_depth().await?;
        let tx = self.rows.db().begin().await?;
        let id = self.rows.insert(&tx, kind, owner, subject, payload).await?;
        self.publish(&channel, kind, &id).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn claim(&self) -> Result<Option<Task>, QueueError> {
        while let Some(delivery) = self.next_arrival() {
            let Some(id) = task_id_of(&delivery) else {
                tracing::warn!("dropped a task message without a task id");
                settle(delivery.acker, Settle::Done).await;
                continue;
            };
            let record = match task_store::claim_by_id(self.rows.db(), &id, self.rows.lease_until()).await {
                Ok(Some(record)) => record,
                Ok(None) => {
                    self.pass_on(&id, delivery).await?;
                    continue;
                }
                Err(error) => {
                    put_back_later(delivery.acker);
                    return Err(error.into());
                }
            };
            self.held.lock().expect("held lock").insert(id.clone(), delivery.acker);
            return match self.rows.open_claimed(record).await {
                Ok(task) => Ok(Some(task)),
                Err(error) => {
                    let acker = self.held.lock().expect("held lock").remove(&id);
                    if let Some(acker) = acker {
                        settle(acker, Settle::Done).await;
                    }
                    Err(error)
                }
            };
        }
        Ok(None)
    }

    async fn heartbeat(&self, task: &Task) -> Result<Recorded, QueueError> {
        self.rows.heartbeat(task).await
    }

    async fn complete(&self, task: &Task, result: &Value, elapsed: Duration) -> Result<Recorded, QueueError> {
        let recorded = self.rows.complete(task, result, elapsed).await;
        self.settle_held(task, &recorded, Settle::Done).await;
        if matches!(recorded, Ok(Recorded::Yes)) {
            self.tell_finished(&task.id).await;
        }
        recorded
    }

    async fn fail(&self, task: &Task, failure: &TaskFailure, elapsed: Duration) -> Result<Recorded, QueueError> {
        let recorded = self.rows.fail(task, failure, elapsed).await;
        let wanted = match (failure.retryable, task.attempt < task.max_attempts) {
            (true, true) => Settle::Again,
            (true, false) => Settle::Dead,
            (false, _) => Settle::Done,
        };
        self.settle_held(task, &recorded, wanted).await;
        if matches!(recorded, Ok(Recorded::Yes)) && !matches!(wanted, Settle::Again) {
            self.tell_finished(&task.id).await;
        }
        recorded
    }

    async fn sweep_abandoned(&self) -> Result<u64, QueueError> {
        self.rows.sweep_abandoned().await
    }

    async fn status(&self, id: &str) -> Result<Option<TaskStatus>, QueueError> {
        self.rows.status(id).await
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        self.rows.depth().await
    }

    async fn typical_duration(&self, kind: TaskKind) -> Result<Option<Duration>, QueueError> {
        self.rows.typical_duration(kind).await
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.arrival.notified()).await;
    }

    fn finished(&self) -> broadcast::Receiver<String> {
        self.rows.finished()
    }

    async fn abandon(&self, task: &Task) {
        let acker = self.held.lock().expect("held lock").remove(&task.id);
        if let Some(acker) = acker {
            put_back_later(acker);
        }
    }

    async fn broker_health(&self) -> Option<BrokerHealth> {
        let started = Instant::now();
        let figures = match self.publisher() {
            Ok(channel) => match tokio::time::timeout(BROKER_TIMEOUT, self.ready_and_consumers(&channel)).await {
                Ok(Ok(figures)) => Ok(figures),
                Ok(Err(error)) => Err(describe(&error)),
                Err(_) => Err("RabbitMQ did not answer in time".to_owned()),
            },
            Err(error) => Err(error.to_string()),
        };
        let response_time = started.elapsed();
        Some(match figures {
            Ok((ready, consumers, dead_letters)) => {
                BrokerHealth { reachable: true, response_time, ready, consumers, dead_letters, error: None }
            }
            Err(error) => BrokerHealth {
                reachable: false,
                response_time,
                ready: Vec::new(),
                consumers: Vec::new(),
                dead_letters: 0,
                error: Some(error),
            },
        })
    }
}
